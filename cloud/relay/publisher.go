package relay

// The publisher sends each lot's change log to the lot's reservations topic:
// signed, at QoS 1, in seq order, marking changes published only once the
// broker acknowledged them on the connection they went out on. Per-lot
// leases in the outbox give each lot to one replica at a time; the booking
// service wakes its own replica's publisher (Wake) when it commits changes,
// and a poll finds the changes other replicas committed.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
	"github.com/parkgate/parkgate/protocol"
)

// Options tune a Relay; zero values take the defaults.
type Options struct {
	// Owner names this replica in relay_leases (default: host name and a
	// random suffix). Two replicas must not share one.
	Owner string
	// LeaseTTL is how long a lot stays with this replica without its
	// renewing it; a replica that dies loses its lots after this
	// (default 15s). Keep it above PublishTimeout, or a slow batch loses
	// its lot to another replica half-way (harmless, but sent twice).
	LeaseTTL time.Duration
	// PollInterval is how often the relay looks for changes it was not
	// woken for: those committed by other replicas (default 500ms).
	PollInterval time.Duration
	// PublishTimeout bounds the wait for the broker to acknowledge one
	// batch (default 10s).
	PublishTimeout time.Duration
	// BatchSize is how many changes of a lot are in flight at once
	// (default 100).
	BatchSize int
	// Parallel is how many lots this replica publishes at once (default 16).
	Parallel int
	// Linger is how long a wake waits for the changes committed right
	// after it, so that one claim takes the lots of many (default 2ms; a
	// negative value waits for none). Every hold and confirmation wakes the
	// relay: without it, a busy replica claims once per change.
	Linger time.Duration
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Owner = host + "-" + hex.EncodeToString(b[:])
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 15 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 10 * time.Second
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Linger == 0 {
		o.Linger = 2 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Relay publishes the outbox: each lot's changes, signed, at QoS 1, in seq
// order, to the lot's reservations topic, marking them published once the
// broker acknowledged them. Any number of replicas may run against one
// database; a lease gives each lot to one of them at a time.
type Relay struct {
	outbox cloud.Outbox
	key    ed25519.PrivateKey
	pub    publisher
	opts   Options
	log    *slog.Logger
	wake   chan struct{}
	marks  *groupcommit.Group[cloud.Mark, cloud.Marked]

	mu    sync.Mutex
	woken map[string]bool // lots told of (Wake) and not yet claimed
}

// Wake tells the relay that changes of the lot were committed, so it
// publishes them now rather than at its next poll. It never blocks. The
// claim that follows looks at the lots woken since the last one alone; an
// empty lotID (not known) makes it look at every lot's changes.
func (r *Relay) Wake(lotID string) {
	// One spelling per lot, so that a lot being drained is known as busy
	// however its waker spelled it; what is no uuid names no lot.
	lot := ""
	if u, err := uuid.Parse(lotID); err == nil {
		lot = u.String()
	}
	r.rewake(lot)
	notify(r.wake)
}

// takeWoken returns up to max of the lots woken for, none of them busy, and
// forgets them; the rest wait for a later claim (a busy lot's drain
// notifies when it ends).
func (r *Relay) takeWoken(max int, busy []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	skip := make(map[string]bool, len(busy))
	for _, l := range busy {
		skip[l] = true
	}
	var lots []string
	for lot := range r.woken {
		if len(lots) == max {
			break
		}
		if lot != "" && !skip[lot] {
			lots = append(lots, lot)
			delete(r.woken, lot)
		}
	}
	return lots
}

// wokeUnnamed reports, and forgets, whether a wake named no lot.
func (r *Relay) wokeUnnamed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	unnamed := r.woken[""]
	delete(r.woken, "")
	return unnamed
}

// rewake puts lots in (or back in) the set the next claim takes from.
func (r *Relay) rewake(lots ...string) {
	r.mu.Lock()
	if r.woken == nil {
		r.woken = map[string]bool{}
	}
	for _, l := range lots {
		r.woken[l] = true
	}
	r.mu.Unlock()
}

// New returns a relay reading outbox and publishing to the broker in cfg,
// signing with key. A relay needs its own client id
// (one is made up when cfg.ClientID is empty); it must differ from the
// ingest's, or the two would keep taking the connection from each other.
func New(outbox cloud.Outbox, cfg MQTTConfig, key ed25519.PrivateKey, opts Options) (*Relay, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("relay: signing key missing")
	}
	opts.defaults()
	if cfg.ClientID == "" {
		cfg.ClientID = "parkgate-relay-" + opts.Owner
	}
	pub, err := newSession(cfg, opts.Logger)
	if err != nil {
		return nil, err
	}
	return &Relay{outbox: outbox, key: key, pub: pub, opts: opts, log: opts.Logger, wake: make(chan struct{}, 1),
		marks: newMarks(outbox, opts)}, nil
}

// Run publishes until ctx ends, then gives its leases back and disconnects;
// it returns nil then. Call it once per Relay. Broker and database failures
// are logged and retried, never returned.
//
// Each claimed lot is drained by its own goroutine, so a busy lot never
// holds up the others; a drain hands its lot back after a few batches so
// that, with all slots busy, the lots with the oldest backlog come next.
func (r *Relay) Run(ctx context.Context) error {
	wake := r.wake
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		r.pub.close()
		// Give the lots back now rather than make other replicas wait
		// out the leases.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.outbox.ReleaseOutboxLeases(cctx, r.opts.Owner); err != nil {
			r.log.Warn("relay: release leases", "err", err)
		}
	}()

	lots := &lotSet{active: map[string]bool{}}
	poll := time.NewTicker(r.opts.PollInterval)
	defer poll.Stop()
	bo := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	// A wake claims the lots woken for; the first round, a poll, and the
	// round after a failure look at every lot's changes: those committed by
	// other replicas, and any a failed round left behind. all stays set
	// until such a claim has run: a poll that finds every slot busy is not
	// lost to the wakes after it, which would let a lot nobody woke for
	// wait for good under steady load.
	all := true
	for {
		ranAll, err := r.startDrains(ctx, lots, &wg, wake, all)
		if ranAll {
			all = false
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && !lots.takeFailed() {
			bo.reset()
			select {
			case <-ctx.Done():
				return nil
			case <-wake:
				if r.opts.Linger > 0 && !sleep(ctx, r.opts.Linger) {
					return nil
				}
			case <-poll.C:
				all = true
				if n, err := r.outbox.OutboxBacklog(ctx); err == nil {
					relayBacklog.Set(float64(n))
				}
			}
			continue
		}
		// The broker or the database is in trouble: do not spin.
		if err != nil {
			r.log.Warn("relay: claim lots", "err", err)
		}
		all = true
		if !sleep(ctx, bo.next()) {
			return nil
		}
	}
}

// lotSet is the lots this replica is draining, and whether a drain failed
// since the last look.
type lotSet struct {
	mu     sync.Mutex
	active map[string]bool
	failed bool
}

func (s *lotSet) free(max int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max - len(s.active)
}

// list returns the lots being drained.
func (s *lotSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.active))
	for lot := range s.active {
		out = append(out, lot)
	}
	return out
}

func (s *lotSet) add(lot string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active[lot] = true
}

func (s *lotSet) done(lot string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.active, lot)
	s.failed = s.failed || err != nil
}

func (s *lotSet) takeFailed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.failed
	s.failed = false
	return f
}

// startDrains connects to the broker if need be, claims as many lots with
// unpublished changes as there are free slots (of every lot, or of those
// woken for), and starts draining each. ranAll reports a claim of every
// lot made.
func (r *Relay) startDrains(ctx context.Context, lots *lotSet, wg *sync.WaitGroup, wake chan<- struct{}, all bool) (ranAll bool, err error) {
	if err := r.pub.connect(ctx); err != nil {
		return false, err
	}
	free := lots.free(r.opts.Parallel)
	if free <= 0 {
		return false, nil
	}
	busy := lots.list()
	var claimed []cloud.ClaimedLot
	// A claim of every lot leaves the wakes where they are: a lot it took
	// whose wake came after its read is claimed again after its drain
	// (a probe for nothing at worst).
	if all || r.wokeUnnamed() {
		if claimed, err = r.outbox.ClaimOutboxLots(ctx, r.opts.Owner, r.opts.LeaseTTL, free, busy, r.opts.BatchSize); err != nil {
			return false, err
		}
		ranAll = true
	} else if woken := r.takeWoken(free, busy); len(woken) > 0 {
		relayTargetedClaims.Inc()
		var waiting []string
		claimed, waiting, err = r.outbox.ClaimOutboxLotsOf(ctx, r.opts.Owner, r.opts.LeaseTTL, woken, busy, r.opts.BatchSize)
		if err != nil {
			r.rewake(woken...)
			return false, err
		}
		// Another replica holds them: it may have read them before this
		// wake's change and be letting them go. Asked again at the next
		// round (or the poll), as a claim of every lot did.
		r.rewake(waiting...)
	}
	for _, c := range claimed {
		lot := c.LotID
		lots.add(lot)
		wg.Add(1)
		go func() {
			defer wg.Done()
			more, err := r.drain(ctx, lot, c.Changes)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("relay: publish failed", "lot", lot, "err", err)
			}
			if more || err != nil {
				r.rewake(lot)
			}
			lots.done(lot, err)
			// The lot may have more, or have had a change while it was
			// being drained (its wake left it for the next claim).
			notify(wake)
		}()
	}
	return ranAll, nil
}

// batchesPerTurn bounds how long one drain keeps its lot while others wait.
const batchesPerTurn = 10

// drain publishes the lot's unpublished changes batch by batch, the first
// one read by the claim, until none is left, its turn is over, the lease is
// lost, or publishing fails; then it releases the lease. more is true when
// its turn ended with changes perhaps left.
//
// A batch shorter than BatchSize had every change committed before it was
// read: its mark gives the lease back in the same round trip, and the drain
// ends without reading the lot again. On a calm lot (one change per drain)
// a drain costs the database its share of a claim and of a group of marks
// (mark), where it once took four round trips of its own. A change
// committed since the read is not left behind: its commit woke the relay
// (or the next poll sees it), and the lot is claimed again once this drain
// is done.
func (r *Relay) drain(ctx context.Context, lot string, first []cloud.Change) (more bool, err error) {
	// Releases outlive a cancelled ctx, as marks do (mark): a lease left
	// behind holds the lot's changes back from other replicas until it runs
	// out.
	bg := context.WithoutCancel(ctx)
	released := false
	defer func() {
		if released {
			return
		}
		cctx, cancel := context.WithTimeout(bg, 5*time.Second)
		defer cancel()
		if err := r.outbox.ReleaseOutboxLease(cctx, lot, r.opts.Owner); err != nil {
			r.log.Warn("relay: release lease", "lot", lot, "err", err)
		}
	}()
	for turn := range batchesPerTurn {
		rows := first
		if turn > 0 || len(rows) == 0 {
			var err error
			if rows, err = r.outbox.UnpublishedChanges(ctx, lot, r.opts.BatchSize); err != nil || len(rows) == 0 {
				return false, err
			}
		}
		n, perr := r.publishBatch(ctx, lot, rows)
		if n > 0 {
			last := perr == nil && n < r.opts.BatchSize
			m, err := r.mark(cloud.Mark{LotID: lot, From: rows[0].Seq, To: rows[n-1].Seq, Release: last})
			if err != nil {
				return false, err
			}
			relayPublished.Add(float64(len(m.Lags)))
			for _, l := range m.Lags {
				relayDelay.Observe(l)
			}
			if len(m.Lags) > 0 {
				relayLag.Set(m.Lags[len(m.Lags)-1])
			}
			if !m.Held {
				r.log.Info("relay: lease lost", "lot", lot)
				return false, nil
			}
			if last {
				released = true
				return false, nil
			}
		}
		if perr != nil {
			relayPublishErrors.Inc()
			return false, fmt.Errorf("publish lot %s: %w", lot, perr)
		}
	}
	return true, nil
}

var errReconnected = errors.New("connection changed before the acknowledgement")

// publishBatch publishes rows (a gap-free run in seq order) and returns how
// many of them, from the first, the broker acknowledged on the connection
// they went out on. Only that prefix may be marked: marking a later row
// while an earlier one is re-sent would let an edge see them out of order.
func (r *Relay) publishBatch(ctx context.Context, lot string, rows []cloud.Change) (int, error) {
	type inflight struct {
		tok   mqtt.Token
		epoch uint64
	}
	topic := protocol.ReservationsTopic(lot)
	fl := make([]inflight, 0, len(rows))
	for i := range rows {
		c := sign(&rows[i], lot, r.key)
		payload, err := protocol.Encode(&c)
		if err != nil {
			return 0, err
		}
		tok, epoch := r.pub.publish(topic, payload)
		fl = append(fl, inflight{tok, epoch})
	}
	timeout := time.NewTimer(r.opts.PublishTimeout)
	defer timeout.Stop()
	for i, f := range fl {
		select {
		case <-f.tok.Done():
		case <-timeout.C:
			return i, fmt.Errorf("seq %d: no acknowledgement within %s", rows[i].Seq, r.opts.PublishTimeout)
		case <-ctx.Done():
			return i, ctx.Err()
		}
		if err := f.tok.Error(); err != nil {
			return i, fmt.Errorf("seq %d: %w", rows[i].Seq, err)
		}
		if f.epoch != r.pub.epoch() {
			relayUntrusted.Inc()
			return i, fmt.Errorf("seq %d: %w", rows[i].Seq, errReconnected)
		}
	}
	return len(fl), nil
}

// notify sets the wake flag; a round that starts after it sees every change
// committed before the call.
func notify(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
