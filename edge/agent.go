package edge

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/parkgate/parkgate/protocol"
)

// GateConfig is one gate with the barrier it drives.
type GateConfig struct {
	Gate
	Barrier Barrier
}

// Config is what NewAgent needs. Link, Observer, Now, NewEventID and Logger
// may be left zero.
type Config struct {
	LotID      string
	Gates      []GateConfig
	Store      Store
	Link       Link
	Policy     Policy
	Observer   Observer
	Now        func() time.Time
	NewEventID func() string
	Logger     *slog.Logger
	// CloudKeys verify access codes: the keys the cloud signs changes
	// with. None: every code is refused (invalid_code).
	CloudKeys []ed25519.PublicKey
}

// Result is what a camera or operator is told about one event.
type Result struct {
	Decision
	EventID   string
	GateID    string
	DecidedIn time.Duration // from the read arriving to the barrier relay set
	At        time.Time
	Note      string // the operator's reason, for a remote open
}

// GateState is one gate as GET /v1/gates shows it.
type GateState struct {
	Gate
	BarrierOpen  bool
	LastDecision *Result
	Online       bool
	SyncSeq      int64
}

// Agent decides at the gates of one lot. Its methods are safe for
// concurrent use.
type Agent struct {
	lot      string
	gates    map[string]*gate
	order    []string
	store    Store
	policy   Policy
	observer Observer
	now      func() time.Time
	newID    func() string
	log      *slog.Logger
	// cloudKeys verify access codes.
	cloudKeys []ed25519.PublicKey

	linkMu sync.RWMutex
	link   Link

	// mu makes lookup, decision and presence update one step, so two reads
	// of the same plate at two entry gates cannot both get in. It is held
	// for microseconds: the commit is waited for after it is released.
	mu sync.Mutex
}

type gate struct {
	Gate
	barrier Barrier
	mu      sync.Mutex
	last    *Result
}

// NewAgent checks cfg and returns an agent.
func NewAgent(cfg Config) (*Agent, error) {
	if cfg.LotID == "" {
		return nil, fmt.Errorf("agent: no lot id")
	}
	if cfg.Store == nil {
		return nil, fmt.Errorf("agent: no store")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if len(cfg.Gates) == 0 {
		return nil, fmt.Errorf("agent: no gates")
	}
	a := &Agent{
		lot:      cfg.LotID,
		gates:    make(map[string]*gate, len(cfg.Gates)),
		store:    cfg.Store,
		policy:   cfg.Policy,
		observer: cfg.Observer,
		now:      cfg.Now,
		newID:    cfg.NewEventID,
		log:      cfg.Logger,
		link:     cfg.Link,

		cloudKeys: cfg.CloudKeys,
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.newID == nil {
		a.newID = uuid.NewString
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	for _, g := range cfg.Gates {
		if g.Barrier == nil {
			return nil, fmt.Errorf("agent: gate %q has no barrier", g.ID)
		}
		if _, dup := a.gates[g.ID]; dup {
			return nil, fmt.Errorf("agent: gate %q listed twice", g.ID)
		}
		a.gates[g.ID] = &gate{Gate: g.Gate, barrier: g.Barrier}
		a.order = append(a.order, g.ID)
	}
	return a, nil
}

// SetLink attaches the cloud link once it exists: the link needs the store,
// and the agent may decide before the link is up.
func (a *Agent) SetLink(l Link) {
	a.linkMu.Lock()
	a.link = l
	a.linkMu.Unlock()
}

func (a *Agent) online() bool {
	a.linkMu.RLock()
	defer a.linkMu.RUnlock()
	return a.link != nil && a.link.Connected()
}

// HandleRead decides on a camera read and acts on it: an open pulses the
// barrier at once, and only then is the event written. It returns when the
// event is durable in the outbox, so a camera that got an answer knows the
// event will reach the cloud. Plate is normalised here; a bad one is an
// EInvalid error, an unknown gate ENotFound.
func (a *Agent) HandleRead(ctx context.Context, read PlateRead) (Result, error) {
	start := time.Now()
	g, ok := a.gates[read.GateID]
	if !ok {
		return Result{}, Errorf(ENotFound, "gate_id", "no gate %q at this lot", read.GateID)
	}
	plate, err := protocol.NormalizePlate(read.Plate)
	if err != nil {
		return Result{}, Errorf(EInvalid, "plate", "%q is not a plate", read.Plate)
	}
	if math.IsNaN(read.Confidence) || read.Confidence < 0 || read.Confidence > 1 {
		return Result{}, Errorf(EInvalid, "confidence", "confidence %v outside 0..1", read.Confidence)
	}
	read.Plate, read.Direction = plate, g.Direction
	return a.decide(ctx, g, start, plate, read.Confidence, func(v View, now time.Time) Decision {
		return Decide(read, v, now, a.policy)
	})
}

// HandleCode decides on an access code shown at a gate (the QR fallback
// when the camera cannot read the plate) as HandleRead does on a read: the
// same store, the same presence, the same event. A code that does not
// verify against the cloud's keys is denied (invalid_code) and recorded
// like any refusal.
func (a *Agent) HandleCode(ctx context.Context, gateID, code string) (Result, error) {
	start := time.Now()
	g, ok := a.gates[gateID]
	if !ok {
		return Result{}, Errorf(ENotFound, "gate_id", "no gate %q at this lot", gateID)
	}
	cr := CodeRead{GateID: g.ID, Direction: g.Direction}
	if c, err := protocol.ParseAccessCode(code, a.cloudKeys); err == nil {
		cr.Code = &c
	}
	plate := ""
	if cr.Code != nil && cr.Code.LotID == a.lot {
		plate = cr.Code.Plate
	}
	return a.decide(ctx, g, start, plate, 1, func(v View, now time.Time) Decision {
		return DecideCode(cr, a.lot, v, now, a.policy)
	})
}

// decide looks plate up (none when empty), takes decideFn's decision,
// opens the barrier for an open, and records the event: one step under
// a.mu, so two reads or codes for one plate at two gates cannot both get
// in. It returns once the event is durable.
func (a *Agent) decide(ctx context.Context, g *gate, start time.Time, plate string, confidence float64,
	decideFn func(View, time.Time) Decision) (Result, error) {
	offline := !a.online()

	a.mu.Lock()
	now := a.now()
	var view View
	if plate != "" {
		var err error
		if view, err = a.store.Lookup(plate); err != nil {
			a.mu.Unlock()
			return Result{}, fmt.Errorf("lookup %s: %w", plate, err)
		}
	}
	d := decideFn(view, now)
	var barrierErr error
	if d.Open() {
		barrierErr = g.barrier.Open()
	}
	decidedIn := time.Since(start)
	// The event names the plate decided about: for a fuzzy read that is
	// the matched plate, which is what the cloud's records know.
	ev := a.event(g, protocol.KindDecision, now, d, decidedIn, offline)
	ev.Confidence = confidence
	rec := Record{Event: ev, Presence: presenceChange(d)}
	done := a.store.Record(rec)
	a.mu.Unlock()

	if barrierErr != nil {
		// The decision stands and is recorded; the relay failing is a
		// hardware fault for the operator, not a reason to lose the event.
		a.log.Error("barrier did not open", "gate", g.ID, "err", barrierErr)
	}
	res := Result{Decision: d, EventID: ev.EventID, GateID: g.ID, DecidedIn: decidedIn, At: now}
	g.setLast(res)
	if a.observer != nil {
		a.observer.Decided(g.ID, d, decidedIn)
	}
	if err := waitCommit(ctx, done); err != nil {
		return res, fmt.Errorf("record event: %w", err)
	}
	return res, nil
}

// Ping walks the decision path without deciding: it takes the lock every
// read takes and looks a plate up in the store. An agent that could not
// decide (a lock never released, a store that no longer answers) makes it
// block or fail, so the systemd watchdog runs it with a deadline. It does
// not ask for the cloud: an offline agent still decides.
func (a *Agent) Ping() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.store.Lookup(pingPlate); err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	return nil
}

// pingPlate is a well-formed plate no one drives: the lookup runs the same
// code as a real read.
const pingPlate = "PING0"

// Override records that the manual override input of a gate opened its
// barrier. The barrier is opened here too, so an override wired only to the
// agent (not to the barrier controller) still works.
func (a *Agent) Override(ctx context.Context, gateID string) (Result, error) {
	return a.open(ctx, gateID, "")
}

// RemoteOpen opens a gate's barrier at an operator's request (a driver at
// the intercom, a broken camera) and records it like the override button:
// a gate event with decision open and reason manual_override, through the
// same outbox as every decision, so the cloud learns who was let in and
// why. note is the operator's reason and travels on the event; it must not
// be empty, because an open nobody can explain later is what an audit is for.
func (a *Agent) RemoteOpen(ctx context.Context, gateID, note string) (Result, error) {
	if note == "" {
		return Result{}, Errorf(EInvalid, "reason", "a remote open needs a reason")
	}
	return a.open(ctx, gateID, note)
}

// Command acts on a command of the lot's change stream once it has been
// applied: a remote open (protocol.KindGateOpen) of one of this agent's
// gates, by the deadline the cloud gave it, opens that gate as RemoteOpen
// does, recording the operator's reason. It reports whether it opened.
// Anything else is no command of this agent's: a change of another kind,
// another agent's gate. A remote open heard of after its deadline (the
// edge was offline) is not carried out: nobody is at the gate any more.
// Applied changes are not applied again, so a command runs at most once.
func (a *Agent) Command(ctx context.Context, c protocol.ReservationChange) (bool, error) {
	if c.Kind != protocol.KindGateOpen {
		return false, nil
	}
	g, err := c.GateOpen()
	if err != nil {
		return false, err
	}
	if _, ok := a.gates[g.GateID]; !ok {
		return false, nil
	}
	if now := a.now(); now.After(g.NotAfter) {
		a.log.Warn("remote open heard of after its deadline: not opened", "gate", g.GateID, "seq", c.Seq,
			"issued_at", g.IssuedAt, "not_after", g.NotAfter, "now", now)
		return false, nil
	}
	if _, err := a.open(ctx, g.GateID, g.Reason); err != nil {
		return true, err
	}
	return true, nil
}

func (a *Agent) open(ctx context.Context, gateID, note string) (Result, error) {
	start := time.Now()
	g, ok := a.gates[gateID]
	if !ok {
		return Result{}, Errorf(ENotFound, "gate_id", "no gate %q at this lot", gateID)
	}
	offline := !a.online()
	a.mu.Lock()
	now := a.now()
	barrierErr := g.barrier.Open()
	d := Decision{Decision: protocol.DecisionOpen, Reason: protocol.ReasonManualOverride}
	decidedIn := time.Since(start)
	ev := a.event(g, protocol.KindOverride, now, d, decidedIn, offline)
	ev.Note = note
	done := a.store.Record(Record{Event: ev})
	a.mu.Unlock()
	if barrierErr != nil {
		a.log.Error("barrier did not open on override", "gate", g.ID, "err", barrierErr)
	}
	res := Result{Decision: d, EventID: ev.EventID, GateID: g.ID, DecidedIn: decidedIn, At: now, Note: note}
	g.setLast(res)
	if a.observer != nil {
		a.observer.Decided(g.ID, d, decidedIn)
	}
	if err := waitCommit(ctx, done); err != nil {
		return res, fmt.Errorf("record override: %w", err)
	}
	return res, nil
}

// ResetPresence returns a plate to neutral (neither inside nor outside), as
// an operator does when a car left without a read or anti-passback refuses a
// car that is really outside. It writes a reset event on gateID, or on the
// first gate when gateID is empty; the barrier does not move.
func (a *Agent) ResetPresence(ctx context.Context, plate, gateID string) (Result, error) {
	p, err := protocol.NormalizePlate(plate)
	if err != nil {
		return Result{}, Errorf(EInvalid, "plate", "%q is not a plate", plate)
	}
	if gateID == "" {
		gateID = a.order[0]
	}
	g, ok := a.gates[gateID]
	if !ok {
		return Result{}, Errorf(ENotFound, "gate_id", "no gate %q at this lot", gateID)
	}
	offline := !a.online()
	a.mu.Lock()
	now := a.now()
	view, err := a.store.Lookup(p)
	if err != nil {
		a.mu.Unlock()
		return Result{}, fmt.Errorf("lookup %s: %w", p, err)
	}
	d := Decision{
		Decision: protocol.DecisionDeny,
		Reason:   ReasonPresenceReset,
		Plate:    p,
		Presence: PresenceLeave,
	}
	if view.Exact.Presence != nil {
		d.ReservationID = view.Exact.Presence.ReservationID
	}
	ev := a.event(g, protocol.KindReset, now, d, 0, offline)
	ev.Plate = p
	done := a.store.Record(Record{Event: ev, Presence: PresenceChange{Op: PresenceLeave, Plate: p}})
	a.mu.Unlock()
	res := Result{Decision: d, EventID: ev.EventID, GateID: g.ID, At: now}
	if err := waitCommit(ctx, done); err != nil {
		return res, fmt.Errorf("record reset: %w", err)
	}
	return res, nil
}

// Gates returns every gate's state in configuration order.
func (a *Agent) Gates() []GateState {
	a.linkMu.RLock()
	link := a.link
	a.linkMu.RUnlock()
	var seq int64
	online := false
	if link != nil {
		seq, online = link.AppliedSeq(), link.Connected()
	} else if s, err := a.store.LastSeq(); err == nil {
		seq = s
	}
	out := make([]GateState, 0, len(a.order))
	for _, id := range a.order {
		g := a.gates[id]
		g.mu.Lock()
		last := g.last
		g.mu.Unlock()
		out = append(out, GateState{
			Gate:         g.Gate,
			BarrierOpen:  g.barrier.IsOpen(),
			LastDecision: last,
			Online:       online,
			SyncSeq:      seq,
		})
	}
	return out
}

// GateIDs returns the gate ids in configuration order.
func (a *Agent) GateIDs() []string { return append([]string(nil), a.order...) }

func (a *Agent) event(g *gate, kind string, now time.Time, d Decision, decidedIn time.Duration, offline bool) protocol.GateEvent {
	return protocol.GateEvent{
		V:               protocol.Version,
		EventID:         a.newID(),
		Kind:            kind,
		LotID:           a.lot,
		GateID:          g.ID,
		Direction:       g.Direction,
		Plate:           d.Plate,
		Decision:        d.Decision,
		Reason:          d.Reason,
		ReservationID:   d.ReservationID,
		Fuzzy:           d.Fuzzy,
		OverstayMinutes: d.OverstayMinutes,
		Offline:         offline,
		OccurredAt:      now.UTC(),
		DecidedInUs:     decidedIn.Microseconds(),
	}
}

func (g *gate) setLast(r Result) {
	g.mu.Lock()
	g.last = &r
	g.mu.Unlock()
}

func presenceChange(d Decision) PresenceChange {
	switch d.Presence {
	case PresenceEnter:
		return PresenceChange{Op: PresenceEnter, Plate: d.Plate, Presence: *d.Entered}
	case PresenceLeave:
		return PresenceChange{Op: PresenceLeave, Plate: d.Plate}
	}
	return PresenceChange{}
}

// SortReservations orders by start, then id, so decisions are reproducible.
func SortReservations(rs []Reservation) {
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].StartsAt.Equal(rs[j].StartsAt) {
			return rs[i].StartsAt.Before(rs[j].StartsAt)
		}
		return rs[i].ID < rs[j].ID
	})
}
