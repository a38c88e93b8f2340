package traffic

import (
	"sync"
	"time"

	"github.com/parkgate/parkgate/sim"
)

// Ledger is the simulator's record of what drivers and cars did. It is safe
// for concurrent use.
type Ledger struct {
	mu       sync.Mutex
	journeys []sim.Journey
	reads    []sim.Read
	samples  []sim.Sample
	inside   map[string]int
	progress Progress
}

// Progress counts what has happened so far, for the progress line.
type Progress struct {
	Holds, Paid, Reads, Entered, Exited, Inside int
}

// NewLedger returns a ledger for the planned journeys.
func NewLedger(journeys []sim.Journey) *Ledger {
	return &Ledger{journeys: journeys, inside: map[string]int{}}
}

// Update changes journey i under the ledger's lock.
func (l *Ledger) Update(i int, f func(j *sim.Journey)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.journeys[i])
}

// Journey returns a copy of journey i.
func (l *Ledger) Journey(i int) sim.Journey {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.journeys[i]
}

// AddRead records a read and its answer.
func (l *Ledger) AddRead(r sim.Read) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads = append(l.reads, r)
	l.progress.Reads++
}

// Held counts a hold for the progress line.
func (l *Ledger) Held() { l.mu.Lock(); l.progress.Holds++; l.mu.Unlock() }

// Paid counts a payment for the progress line.
func (l *Ledger) Paid() { l.mu.Lock(); l.progress.Paid++; l.mu.Unlock() }

// Move records a car entering (+1) or leaving (-1) a lot at t.
func (l *Ledger) Move(lotID string, delta int, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inside[lotID] += delta
	l.samples = append(l.samples, sim.Sample{At: t, LotID: lotID, Inside: l.inside[lotID]})
	if delta > 0 {
		l.progress.Entered++
	} else {
		l.progress.Exited++
	}
}

// Progress returns the counters.
func (l *Ledger) Progress() Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.progress
	for _, n := range l.inside {
		p.Inside += n
	}
	return p
}

// Fill copies the ledger into run.
func (l *Ledger) Fill(run *sim.Run) {
	l.mu.Lock()
	defer l.mu.Unlock()
	run.Journeys = append([]sim.Journey(nil), l.journeys...)
	run.Reads = append([]sim.Read(nil), l.reads...)
	run.Occupancy = append([]sim.Sample(nil), l.samples...)
}
