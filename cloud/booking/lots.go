package booking

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
)

// cachedLot is a lot as read at a time; refreshing while a read of it is
// under way.
type cachedLot struct {
	lot        cloud.Lot
	read       time.Time
	refreshing bool
}

// cachedLot returns a lot this replica has read before. One read more than
// LotTTL ago is still answered, so no hold waits for a read, and read again
// in the background (stale while revalidating): a lot changed on another
// replica is seen here within LotTTL and one read.
func (s *Service) cachedLot(id string) (cloud.Lot, bool) {
	s.lotsMu.RLock()
	c, ok := s.lots[id]
	s.lotsMu.RUnlock()
	if !ok {
		return cloud.Lot{}, false
	}
	if s.Now().Sub(c.read) > s.LotTTL {
		s.refreshLot(id)
	}
	return c.lot, true
}

// refreshLot reads a cached lot again, once at a time, off the caller's
// path. A lot kept meanwhile (UpdateLot) is newer than what the read may
// have seen, and stays.
func (s *Service) refreshLot(id string) {
	s.lotsMu.Lock()
	c, ok := s.lots[id]
	if !ok || c.refreshing || s.Now().Sub(c.read) <= s.LotTTL {
		s.lotsMu.Unlock()
		return
	}
	c.refreshing = true
	s.lots[id] = c
	s.lotsMu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l, err := s.Store.Lot(ctx, id)
		s.lotsMu.Lock()
		defer s.lotsMu.Unlock()
		now, ok := s.lots[id]
		if !ok || !now.read.Equal(c.read) {
			return
		}
		if err != nil {
			now.refreshing = false // the next use tries again
			s.lots[id] = now
			return
		}
		s.lots[id] = cachedLot{lot: l, read: s.Now()}
	}()
}

// Lot returns a lot, from the cache when it has been read before (see
// cachedLot).
func (s *Service) Lot(ctx context.Context, id string) (cloud.Lot, error) {
	if l, ok := s.cachedLot(id); ok {
		return l, nil
	}
	l, err := s.Store.Lot(ctx, id)
	if err != nil {
		return l, err
	}
	s.keepLot(l)
	return l, nil
}

func (s *Service) keepLot(l cloud.Lot) {
	s.lotsMu.Lock()
	s.lots[l.ID] = cachedLot{lot: l, read: s.Now()}
	s.lotsMu.Unlock()
}

func (s *Service) forgetLot(id string) {
	s.lotsMu.Lock()
	delete(s.lots, id)
	s.lotsMu.Unlock()
}

// UpdateLot changes a lot's settings for its operator and returns it as it
// is now. This replica uses the new settings at once; the others within
// their LotTTL, and their holds at once (the store checks the rate and
// whether the lot is closed). The lot's cached availability is dropped, so
// a lot just closed is shown full and one reopened free again.
func (s *Service) UpdateLot(ctx context.Context, id string, u cloud.LotUpdate) (cloud.Lot, error) {
	l, err := s.Store.UpdateLot(ctx, id, u)
	if err != nil {
		return l, err
	}
	s.keepLot(l)
	if s.Guard != nil {
		s.Guard.InvalidateLot(ctx, l.ID)
	}
	return l, nil
}

// holdGroup is the lot's queue of holds to write: the requests of one lot
// that arrive while its previous holds are being written go together, in
// one transaction (cloud.ReservationStore.Holds). They would take turns on
// the lot's row anyway, each waiting for the one before to commit; a surge
// on one lot thus costs one commit per batch, not one per driver.
func (s *Service) holdGroup(lotID string) *groupcommit.Group[cloud.HoldParams, written] {
	s.lotsMu.RLock()
	g, ok := s.holds[lotID]
	s.lotsMu.RUnlock()
	if ok {
		return g
	}
	s.lotsMu.Lock()
	defer s.lotsMu.Unlock()
	if g, ok = s.holds[lotID]; !ok {
		g = &groupcommit.Group[cloud.HoldParams, written]{
			Write: func(ctx context.Context, batch []cloud.HoldParams) ([]written, error) {
				return s.writeHolds(ctx, lotID, batch), nil
			},
			MaxBatch:   64,
			MaxWriters: 1, // a second writer would only wait for the first's row lock
		}
		s.holds[lotID] = g
	}
	return g
}

// hotFor is how long a lot counts as in a rush after the last sign of
// one: a batch of more than one hold, or a window found full.
const hotFor = 2 * time.Second

// fullFor is how long a lot that answered a window full stays off the
// leased path (Hold): its requests ask Redis first, whose availability
// cache knows the window full once an answer found it so, and a calm but
// full lot's drivers get their 409 from there, not each from a write and
// (payments on) a Checkout Session made and thrown away. As long as the
// cache keeps an entry by default (guard's AvailabilityTTL).
const fullFor = 30 * time.Second

// markHot records that the lot is in a rush now.
func (s *Service) markHot(lotID string) { s.hotLots.mark(lotID, s.Now().Add(hotFor)) }

// hot reports whether the lot was in a rush in the last hotFor.
func (s *Service) hot(lotID string) bool { return s.hotLots.active(lotID, s.Now()) }

// markFullSeen records that the lot answered a window full now.
func (s *Service) markFullSeen(lotID string) { s.fullLots.mark(lotID, s.Now().Add(fullFor)) }

// fullSeen reports whether the lot answered a window full in the last
// fullFor.
func (s *Service) fullSeen(lotID string) bool { return s.fullLots.active(lotID, s.Now()) }

// lotMarks records per lot until when a mark holds.
type lotMarks struct {
	m sync.Map // lot id → *atomic.Int64, unix nanos
}

func (l *lotMarks) mark(lotID string, until time.Time) {
	if v, ok := l.m.Load(lotID); ok {
		v.(*atomic.Int64).Store(until.UnixNano())
		return
	}
	var v atomic.Int64
	v.Store(until.UnixNano())
	if old, loaded := l.m.LoadOrStore(lotID, &v); loaded {
		old.(*atomic.Int64).Store(until.UnixNano())
	}
}

func (l *lotMarks) active(lotID string, now time.Time) bool {
	v, ok := l.m.Load(lotID)
	return ok && now.UnixNano() < v.(*atomic.Int64).Load()
}

// savedInBatch reports whether writeHolds stores the final answers of its
// batch in Redis itself, with the lot's invalidation.
func (s *Service) savedInBatch() bool {
	_, ok := s.Guard.(cloud.BatchFinisher)
	return ok
}

// writeHolds writes one batch of a lot's holds. A lot in a rush (a batch of
// more than one, or hot) takes the Redis lock of the lot and the windows
// the batch spans first: one lock for the batch, taken once. A calm lot
// does not: the lock only spreads a surge over time, and correctness is
// Postgres' (the lot row lock orders writers, the exclusion constraint
// keeps them honest), so on a calm day it would be a round trip for
// nothing. A calm lot's hold (a batch of one) goes to Postgres with other
// calm lots' holds, in one transaction (calm, below); a lot in a rush
// writes its batch alone. The lot's cached availability is invalidated
// once for the batch, before any of its callers is answered, in the same
// round trip as the answers that are final now are stored under their
// keys; the lock is released without making them wait for it.
func (s *Service) writeHolds(ctx context.Context, lotID string, batch []cloud.HoldParams) []written {
	var release func()
	if len(batch) > 1 {
		s.markHot(lotID)
	}
	rush := s.hot(lotID)
	if s.Guard != nil && rush {
		start, end := batch[0].StartsAt, batch[0].EndsAt
		for _, p := range batch[1:] {
			if p.StartsAt.Before(start) {
				start = p.StartsAt
			}
			if p.EndsAt.After(end) {
				end = p.EndsAt
			}
		}
		// When it is busy past its wait, or Redis is away, go on without.
		if r, err := s.Guard.Lock(ctx, lotID, start, end); err == nil {
			release = r
		}
	}
	var holds []cloud.HoldOutcome
	if rush {
		holds = s.Store.Holds(ctx, batch)
	} else { // a batch of one: a batch of more made the lot hot above
		holds = s.writeCalmHold(ctx, lotID, batch[0])
	}
	out := make([]written, len(holds))
	for i, o := range holds {
		out[i].HoldOutcome = o
	}
	if release != nil {
		go release()
	}
	// A hold takes a spot (the availability changed); only a free lot's
	// hold, CONFIRMED at once, is a change the edges hear of (a seq): a
	// PENDING one is silent until paid, and waking the relay for it would
	// be a claim that finds nothing.
	changed, published := false, false
	for _, o := range out {
		if o.Err == nil && o.Outcome == cloud.HoldHeld {
			changed = true
			published = published || o.Seq > 0
		}
	}
	if f, ok := s.Guard.(cloud.BatchFinisher); ok {
		f.InvalidateSaving(ctx, lotID, changed, finalAnswers(batch, out))
	} else if changed {
		s.invalidateSilent(ctx, lotID) // the cache; the relay below
	}
	if published && s.Changed != nil {
		s.Changed(lotID)
	}
	return out
}

// Calm lots' holds go to the store together: up to calmBatch lots' in one
// transaction, calmWriters transactions at once. A transaction's fixed
// cost (the round trip, the commit, the plan and lock set-up of the
// function's first call) is most of a single hold's: in a test of
// DB.Holds, 4 writers each making one hold at a time cost Postgres 540-630
// µs of CPU a hold; 4 lots' holds in each transaction, 390-410. The second
// writer starts only once a full batch waits behind the first (Backlog):
// until then the first one's next transaction carries them all. Two
// writers taking turns halved the holds per transaction (3.6 against 7.1
// in bench-binary's guard-on mode, 16 clients on 2 cores) and with them
// the holds/s: 2,364 against 2,745 (p99 18.2 against 14.2 ms), and with
// the Stripe stand-in 1,604 against 1,925, 3 rounds of the two builds in
// slices (session 19). A lot in a rush keeps its own transactions (its
// batch, under its Redis lock), so a surge's writes never carry, nor
// wait for, other lots' holds.
const (
	calmBatch   = 16
	calmWriters = 2
)

// writeCalmHold makes a calm lot's hold with the other calm lots' that
// queued meanwhile. It does not wait there for a lot another transaction
// holds (NoWait): the lot is busy after all (another replica's surge on
// it, a payment confirmed, an edge's check-in), so the shared transaction
// commits without it, and the lot is marked in a rush and its hold made
// again alone, waiting its turn on this lot's writer, where the wait
// holds up no other lot.
func (s *Service) writeCalmHold(ctx context.Context, lotID string, p cloud.HoldParams) []cloud.HoldOutcome {
	p.NoWait = true
	o, err := s.calm.Do(ctx, p)
	if err != nil {
		o = cloud.HoldOutcome{Err: err}
	}
	if o.Err != nil || o.Outcome != cloud.HoldLotLocked {
		return []cloud.HoldOutcome{o}
	}
	s.markHot(lotID)
	calmHoldsAlone.Inc()
	p.NoWait = false
	return s.Store.Holds(ctx, []cloud.HoldParams{p})
}

// written is a hold's outcome as its batch's writer hands it back, with
// the 201 body the writer encoded to store under the hold's key: hold
// answers with those bytes rather than encoding the reservation a second
// time (the two were 8% of parkcloud's CPU per hold in a guard-on
// profile, two fifths of it the second).
type written struct {
	cloud.HoldOutcome
	body []byte
}

// finalAnswers are the responses of the batch that are final now: the 201
// of a hold with nothing left to do (no payment provider, nothing to pay,
// or its session made before it), and the 409 of a window found full. hold
// sends the same: a 201's body is left on its outcome for it.
func finalAnswers(batch []cloud.HoldParams, out []written) []cloud.KeyedResponse {
	var saves []cloud.KeyedResponse
	for i := range out {
		o := &out[i]
		p := batch[i]
		var r cloud.StoredResponse
		switch {
		case o.Err != nil:
			continue
		case o.Outcome == cloud.HoldNoAvailability:
			r = cloud.StoredResponse{Status: http.StatusConflict, Body: noAvailabilityBody}
		case o.Outcome == cloud.HoldHeld && p.FinalStatus != 0:
			body, err := holdBody(heldReservation(p.ID, p.LotID, HoldRequest{Plate: p.Plate, StartsAt: p.StartsAt, EndsAt: p.EndsAt}, p.Price, o.HoldResult, p.AccessToken, p.Session))
			if err != nil {
				continue // hold reports it; its retry replays from Postgres
			}
			r = cloud.StoredResponse{Status: p.FinalStatus, Body: body}
			o.body = body
		default:
			continue
		}
		r.RequestHash = p.RequestHash
		saves = append(saves, cloud.KeyedResponse{Key: p.Key, StoredResponse: r})
	}
	return saves
}
