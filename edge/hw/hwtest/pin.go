package hwtest

import (
	"errors"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// Edge is one level change of a Pin and when it happened.
type Edge struct {
	Level gpio.Level
	At    time.Time
}

// Pin implements gpio.PinIO in memory. The agent drives it like a real
// pin; a test or the simulator calls Set to play the hardware on an input and
// reads Edges (or Watch) to see what the agent did on an output. Every level
// change is recorded with time.Now(), so the recorded time of a barrier's
// rising edge is when the relay would have closed. It is safe for concurrent
// use.
type Pin struct {
	name string

	mu       sync.Mutex
	level    gpio.Level
	pull     gpio.Pull
	mode     gpio.Edge
	output   bool
	edges    []Edge
	watchers map[int]chan Edge
	nextID   int
	pending  chan struct{} // one unconsumed input edge for WaitForEdge
}

var _ gpio.PinIO = (*Pin)(nil)

// NewPin returns a low pin named name.
func NewPin(name string) *Pin {
	return &Pin{name: name, pending: make(chan struct{}, 1), watchers: map[int]chan Edge{}}
}

// String implements conn.Resource.
func (p *Pin) String() string { return p.name }

// Halt implements conn.Resource.
func (p *Pin) Halt() error { return nil }

// Name implements pin.Pin.
func (p *Pin) Name() string { return p.name }

// Number implements pin.Pin; a fake pin has no number.
func (p *Pin) Number() int { return -1 }

// Function implements pin.Pin.
func (p *Pin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *Pin) Func() pin.Func {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.output {
		return gpio.OUT
	}
	return gpio.IN
}

// In implements gpio.PinIn. A pull resistor sets the idle level, as it would
// on a board with nothing driving the pin; edges not yet waited for are
// dropped.
func (p *Pin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.output, p.pull, p.mode = false, pull, edge
	switch pull {
	case gpio.PullDown:
		p.level = gpio.Low
	case gpio.PullUp:
		p.level = gpio.High
	}
	select {
	case <-p.pending:
	default:
	}
	return nil
}

// Read implements gpio.PinIn.
func (p *Pin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// WaitForEdge implements gpio.PinIn: it returns true as soon as an edge of
// the kind given to In has been Set, false after timeout (-1 waits forever).
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	if timeout < 0 {
		<-p.pending
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.pending:
		return true
	case <-t.C:
		return false
	}
}

// Pull implements gpio.PinIn.
func (p *Pin) Pull() gpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// DefaultPull implements gpio.PinIn.
func (p *Pin) DefaultPull() gpio.Pull { return gpio.Float }

// Out implements gpio.PinOut and records the edge if the level changes.
func (p *Pin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.output = true
	p.setLocked(l)
	return nil
}

// PWM implements gpio.PinOut; a fake pin has no PWM.
func (p *Pin) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("hwtest: pin has no PWM")
}

// Set plays the hardware on an input: the level changes, the edge is
// recorded, and a WaitForEdge for that kind of edge returns.
func (p *Pin) Set(l gpio.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.setLocked(l) {
		return
	}
	if p.mode == gpio.BothEdges || (p.mode == gpio.RisingEdge && l == gpio.High) || (p.mode == gpio.FallingEdge && l == gpio.Low) {
		select {
		case p.pending <- struct{}{}:
		default: // edges accumulate into one, as periph documents for real pins
		}
	}
}

func (p *Pin) setLocked(l gpio.Level) bool {
	if p.level == l {
		return false
	}
	p.level = l
	e := Edge{Level: l, At: time.Now()}
	p.edges = append(p.edges, e)
	for _, w := range p.watchers {
		select {
		case w <- e:
		default: // a slow watcher loses edges rather than stall the agent; Edges has them all
		}
	}
	return true
}

// Edges returns a copy of every recorded edge, oldest first.
func (p *Pin) Edges() []Edge {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Edge(nil), p.edges...)
}

// TakeEdges returns the recorded edges and forgets them, so a long run does
// not keep every edge in memory.
func (p *Pin) TakeEdges() []Edge {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.edges
	p.edges = nil
	return e
}

// Watch delivers each future edge on a channel with room for buf edges; an
// edge that finds the channel full is not delivered. Call stop to end it.
func (p *Pin) Watch(buf int) (edges <-chan Edge, stop func()) {
	ch := make(chan Edge, buf)
	p.mu.Lock()
	id := p.nextID
	p.nextID++
	p.watchers[id] = ch
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		delete(p.watchers, id)
		p.mu.Unlock()
	}
}
