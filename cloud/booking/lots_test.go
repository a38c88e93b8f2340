package booking_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// TestLotCacheRevalidates: a lot changed by another replica is answered
// as cached at once (no caller waits for a read), then as it is now, once
// the entry is older than LotTTL; a change made through this service is
// seen at once.
func TestLotCacheRevalidates(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 4)
	ctx := context.Background()
	svc := booking.New(s.DB, nil, nil, nil, 10*time.Minute)
	other := booking.New(s.DB, nil, nil, nil, 10*time.Minute) // another replica
	lot, err := s.DB.CreateLot(ctx, cloud.Lot{Name: "A", TimeZone: "UTC", Spots: []string{"1"},
		HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	svc.Now = func() time.Time { return now }
	if l, err := svc.Lot(ctx, lot.ID); err != nil || l.HourlyRate.Amount != 100 {
		t.Fatalf("first read: %+v, %v", l, err)
	}
	rate := cloud.Money{Amount: 700, Currency: "EUR"}
	if _, err := other.UpdateLot(ctx, lot.ID, cloud.LotUpdate{HourlyRate: &rate}); err != nil {
		t.Fatal(err)
	}
	if l, _ := svc.Lot(ctx, lot.ID); l.HourlyRate.Amount != 100 {
		t.Fatalf("within LotTTL: rate %d, want the cached 100", l.HourlyRate.Amount)
	}
	now = now.Add(svc.LotTTL + time.Second)
	if l, _ := svc.Lot(ctx, lot.ID); l.HourlyRate.Amount != 100 {
		t.Fatalf("first use past LotTTL: rate %d, want the cached 100 while it is read again", l.HourlyRate.Amount)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, _ := svc.Lot(ctx, lot.ID)
		if l.HourlyRate.Amount == 700 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache never read the lot again")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := true
	if _, err := svc.UpdateLot(ctx, lot.ID, cloud.LotUpdate{Closed: &closed}); err != nil {
		t.Fatal(err)
	}
	if l, _ := svc.Lot(ctx, lot.ID); !l.Closed {
		t.Errorf("a change through this service is not seen at once")
	}
}

// gatedStore holds every Holds call at gate until it is closed, and
// records the lots each call carried and whether each hold was NoWait.
// With arrived set, each call signals it on reaching the gate.
type gatedStore struct {
	cloud.Store
	gate    chan struct{}
	arrived chan struct{}
	mu      sync.Mutex
	calls   [][]string
	noWait  [][]bool
}

func (g *gatedStore) Holds(ctx context.Context, ps []cloud.HoldParams) []cloud.HoldOutcome {
	g.mu.Lock()
	gate, arrived := g.gate, g.arrived
	g.mu.Unlock()
	if arrived != nil {
		arrived <- struct{}{}
	}
	<-gate
	var lots []string
	var noWait []bool
	for _, p := range ps {
		lots = append(lots, p.LotID)
		noWait = append(noWait, p.NoWait)
	}
	g.mu.Lock()
	g.calls = append(g.calls, lots)
	g.noWait = append(g.noWait, noWait)
	g.mu.Unlock()
	return g.Store.Holds(ctx, ps)
}

// gatedService is a booking service on a gatedStore (its gate closed) of
// a fresh schema, and mk, which makes a lot with one spot named "S-"+name.
func gatedService(t *testing.T) (*pgtest.Schema, *gatedStore, *booking.Service, func(name string) string) {
	t.Helper()
	s := pgtest.New(t, 8)
	store := &gatedStore{Store: s.DB, gate: make(chan struct{})}
	svc := booking.New(store, nil, nil, nil, 10*time.Minute)
	mk := func(name string) string {
		l, err := s.DB.CreateLot(context.Background(), cloud.Lot{Name: name, TimeZone: "UTC", Spots: []string{"S-" + name},
			HourlyRate: cloud.Money{Amount: 100, Currency: "EUR"}})
		if err != nil {
			t.Fatal(err)
		}
		return l.ID
	}
	return s, store, svc, mk
}

// TestCalmLotsWrittenTogether: the holds of calm lots that wait for the
// store while earlier ones are written go to it together, several lots'
// in one call (one transaction); a lot in a rush never shares its calls
// with another lot.
func TestCalmLotsWrittenTogether(t *testing.T) {
	t.Parallel()
	_, store, svc, mk := gatedService(t)
	ctx := context.Background()
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	hold := func(lot, plate string, at time.Time) booking.Response {
		r, err := svc.Hold(ctx, "calm-"+plate, booking.HoldRequest{LotID: lot, Plate: plate, StartsAt: at, EndsAt: at.Add(time.Hour)}, booking.Limits{})
		if err != nil {
			t.Errorf("%s: %v", plate, err)
		}
		return r
	}

	// A lot in a rush: its one spot taken, then a window found full.
	close(store.gate) // the set-up's holds pass
	hot := mk("hot")
	if r := hold(hot, "H0", start); r.Status != 201 {
		t.Fatalf("first hold on the hot lot: %d %s", r.Status, r.Body)
	}
	if r := hold(hot, "H1", start); r.Status != 409 {
		t.Fatalf("second hold on the hot lot: %d %s", r.Status, r.Body)
	}
	store.mu.Lock()
	store.calls, store.gate = nil, make(chan struct{})
	store.mu.Unlock()

	const calm = 12
	lots := make([]string, calm)
	for i := range lots {
		lots[i] = mk(fmt.Sprint("calm", i))
	}
	statuses := make([]int, calm+1)
	var wg sync.WaitGroup
	for i := range calm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := hold(lots[i], fmt.Sprint("C", i), start)
			statuses[i] = r.Status
			// Each lot's one spot has a name of its own: an outcome handed
			// to the wrong request would show another lot's.
			var got struct{ LotID, SpotID, Plate string }
			if err := json.Unmarshal(r.Body, &struct {
				LotID  *string `json:"lot_id"`
				SpotID *string `json:"spot_id"`
				Plate  *string `json:"plate"`
			}{&got.LotID, &got.SpotID, &got.Plate}); err != nil || got.LotID != lots[i] || got.Plate != fmt.Sprint("C", i) || got.SpotID != fmt.Sprint("S-calm", i) {
				t.Errorf("C%d on %s answered with %s", i, lots[i], r.Body)
			}
		}()
	}
	// The first writes wait at the gate, the rest queue behind them; the
	// hot lot's hold comes last, when there is a queue it could join.
	time.Sleep(200 * time.Millisecond)
	wg.Add(1)
	go func() {
		defer wg.Done()
		statuses[calm] = hold(hot, "H2", start.Add(2*time.Hour)).Status
	}()
	time.Sleep(200 * time.Millisecond)
	store.mu.Lock()
	close(store.gate)
	store.mu.Unlock()
	wg.Wait()
	for i, st := range statuses {
		if st != 201 {
			t.Errorf("request %d: %d", i, st)
		}
	}
	most := 0
	for _, c := range store.calls {
		most = max(most, len(c))
		if len(c) > 1 && slices.Contains(c, hot) {
			t.Errorf("the lot in a rush shared a write with other lots: %v", c)
		}
	}
	if most < 2 {
		t.Errorf("calm lots' holds each went alone (calls %v); want those that queued together", store.calls)
	}
}

// TestBusyLotLeavesCalmLots: a calm lot's hold that shares its transaction
// with other calm lots' never makes them wait for its lot, when another
// transaction holds that lot's row (another replica's surge on it, a
// payment's confirmation): the others are answered while the lot is held,
// and its own hold is made alone once the lot is free.
func TestBusyLotLeavesCalmLots(t *testing.T) {
	t.Parallel()
	s, store, svc, mk := gatedService(t)
	ctx := context.Background()
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	hold := func(lot, plate string) <-chan int {
		done := make(chan int, 1)
		go func() {
			r, err := svc.Hold(ctx, "busy-"+plate, booking.HoldRequest{LotID: lot, Plate: plate, StartsAt: start, EndsAt: start.Add(time.Hour)}, booking.Limits{})
			if err != nil {
				t.Errorf("%s: %v", plate, err)
			}
			done <- r.Status
		}()
		return done
	}

	busy := mk("busy")
	tx, err := s.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM lots WHERE id = $1 FOR UPDATE`, busy); err != nil {
		t.Fatal(err)
	}

	// A calm writer waits at the gate with a hold; the busy lot's hold and
	// the others queue behind it (fewer than a full batch, so no second
	// writer starts), to go in one transaction once the gate opens.
	store.mu.Lock()
	store.arrived = make(chan struct{}, 64)
	store.mu.Unlock()
	first := []<-chan int{hold(mk("w1"), "w1")}
	select {
	case <-store.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("hold w1 never reached the store")
	}
	busyDone := hold(busy, "B")
	var others []<-chan int
	for i := range 7 {
		others = append(others, hold(mk(fmt.Sprint("calm", i)), fmt.Sprint("C", i)))
	}
	for deadline := time.Now().Add(10 * time.Second); booking.CalmQueued(svc) < 8; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 8 holds queued for the calm writers", booking.CalmQueued(svc))
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(store.gate)

	timeout := time.After(10 * time.Second)
	for i, c := range append(first, others...) {
		select {
		case st := <-c:
			if st != 201 {
				t.Errorf("calm hold %d: %d", i, st)
			}
		case <-timeout:
			t.Fatalf("calm hold %d waited for the busy lot, held by another transaction", i)
		}
	}
	select {
	case st := <-busyDone:
		t.Fatalf("the busy lot's hold answered %d while another transaction held its lot", st)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-busyDone:
		if st != 201 {
			t.Errorf("the busy lot's hold, once free: %d", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the busy lot's hold never made once its lot was free")
	}
	// The busy lot's hold went with the others, asking not to wait, then
	// alone, waiting its turn.
	store.mu.Lock()
	defer store.mu.Unlock()
	shared, alone := false, false
	for i, c := range store.calls {
		if j := slices.Index(c, busy); j >= 0 {
			shared = shared || (len(c) == 8 && store.noWait[i][j])
			alone = alone || (len(c) == 1 && !store.noWait[i][j])
		}
	}
	if !shared || !alone {
		t.Errorf("calls %v (NoWait %v): want the busy lot's hold in the shared call of 8, NoWait, then alone without", store.calls, store.noWait)
	}
}
