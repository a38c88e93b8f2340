package guard_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
)

// admitOnce is a hold's way in on the calm path: a leased token of each
// limit, or else Admit. It reports whether the request may go on.
func admitOnce(ctx context.Context, g *guard.Guard, key, lot, client string) bool {
	if g.Leased(lot, client) {
		return true
	}
	start := at(0, 10)
	a := g.Admit(ctx, key, lot, start, start.Add(time.Hour), false, client)
	return a.Asked && a.Allowed
}

// TestLeasesAreExactOnOneReplica: a replica that leases tokens spends
// them all before Redis refuses, so one replica allows exactly the burst
// (no refill: the rate is one per 100 s), and Admit asks Redis once per
// lease, not once per request.
func TestLeasesAreExactOnOneReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, burst := range []int{1, 15, 16, 64, 100} {
		t.Run(fmt.Sprint(burst), func(t *testing.T) {
			t.Parallel()
			g, _ := setup(t, guard.Options{
				ClientRate: guard.Limit{Rate: 0.01, Burst: burst},
				LotRate:    guard.Unlimited,
			})
			allowed, leased := 0, 0
			for i := range burst + 20 {
				if g.Leased("lot-1", "c-1") {
					leased++
					allowed++
					continue
				}
				start := at(0, 10)
				a := g.Admit(ctx, fmt.Sprint("k-", i), "lot-1", start, start.Add(time.Hour), false, "c-1")
				if !a.Asked {
					t.Fatalf("request %d: limits not asked: %+v", i, a)
				}
				if a.Allowed {
					allowed++
				} else if a.RetryAfter <= 0 {
					t.Fatalf("request %d refused with no Retry-After", i)
				}
			}
			if allowed != burst {
				t.Errorf("allowed %d of burst %d", allowed, burst)
			}
			size := max(1, burst/16)
			if want := burst - (burst+size-1)/size; leased != want {
				t.Errorf("%d requests let through on leased tokens, want %d (leases of %d)", leased, want, size)
			}
		})
	}
}

// TestLeasesBoundTheFleet: replicas sharing a limit through leases never
// allow more than it, and refuse early by at most a lease per replica
// (the tokens another replica holds).
func TestLeasesBoundTheFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const burst = 160 // leases of 10
	g, b := setup(t, guard.Options{LotRate: guard.Limit{Rate: 0.01, Burst: burst}, ClientRate: guard.Unlimited})
	replicas := []*guard.Guard{g, b.replica(t), b.replica(t)}
	allowed := 0
	for i := range 3 * burst {
		if admitOnce(ctx, replicas[i%len(replicas)], fmt.Sprint("k-", i), "lot-1", "") {
			allowed++
		}
	}
	if allowed > burst || allowed < burst-len(replicas)*(burst/16-1) {
		t.Errorf("%d replicas allowed %d of burst %d", len(replicas), allowed, burst)
	}
}

// TestLeaseAskedOnce: requests that find no token at the same moment ask
// Redis for one lease between them, the others for their own token: a
// replica cannot hoard a lease per concurrent request.
func TestLeaseAskedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const burst = 320 // leases of 20
	g, b := setup(t, guard.Options{ClientRate: guard.Limit{Rate: 0.01, Burst: burst}, LotRate: guard.Unlimited})
	start := make(chan struct{})
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if admitOnce(ctx, g, fmt.Sprint("k-", i), "lot-1", "c-1") {
				allowed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	held := 0
	for g.Leased("lot-1", "c-1") {
		held++
	}
	if allowed.Load() != 16 || held > 19 {
		t.Errorf("16 requests at once: %d allowed, %d tokens left held here (one lease is 19 beyond its own)", allowed.Load(), held)
	}
	// Every token is accounted for: what Redis still has plus what was
	// taken makes the burst.
	left := 0
	other := b.replica(t)
	for other.Leased("lot-1", "c-1") || admitOnce(ctx, other, fmt.Sprint("o-", left), "lot-1", "c-1") {
		left++
	}
	if got := 16 + held + left; got != burst {
		t.Errorf("taken %d + held %d + left %d = %d, want the burst %d", 16, held, left, got, burst)
	}
}

// TestLeaseGivenBack: a request that spends no token (a replay, a full
// window) gives back the leased one it took.
func TestLeaseGivenBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start, end := at(0, 10), at(0, 12)
	g, _ := setup(t, guard.Options{ClientRate: guard.Limit{Rate: 0.01, Burst: 64}, LotRate: guard.Unlimited})
	if a := g.Admit(ctx, "k-1", "lot-1", start, end, true, "c-1"); !a.Allowed { // leases 4: 3 held
		t.Fatalf("first: %+v", a)
	}
	g.SaveResponse(ctx, "k-1", guard.StoredResponse{RequestHash: []byte{1}, Status: 201, Body: []byte("{}")})
	for range 5 {
		if a := g.Admit(ctx, "k-1", "lot-1", start, end, true, "c-1"); !a.Replay || a.Asked {
			t.Fatalf("replay: %+v", a)
		}
	}
	fill(t, g, "lot-1", 0, 5)
	if a := g.Admit(ctx, "k-2", "lot-1", start, end, true, "c-1"); !a.Full || a.Asked {
		t.Fatalf("full: %+v", a)
	}
	held := 0
	for g.Leased("lot-1", "c-1") {
		held++
	}
	if held != 3 {
		t.Errorf("%d tokens held after the replays and the full window, want the lease's 3", held)
	}
}

// TestLeaseLapses: leased tokens are usable for as long as the limit takes
// to refill them, at least a second, and then no more.
func TestLeaseLapses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var now atomic.Pointer[time.Time]
	t0 := time.Now()
	now.Store(&t0)
	clock := func() time.Time { return *now.Load() }
	g, _ := setup(t, guard.Options{ClientRate: guard.Limit{Rate: 2, Burst: 64}, LotRate: guard.Unlimited, Now: clock})
	if !admitOnce(ctx, g, "k-1", "lot-1", "c-1") { // a lease of 4, for 2 s (4 at 2/s)
		t.Fatal("first refused")
	}
	later := t0.Add(1900 * time.Millisecond)
	now.Store(&later)
	if !g.Leased("lot-1", "c-1") {
		t.Fatal("the lease lapsed before its tokens could have refilled")
	}
	lapsed := t0.Add(2100 * time.Millisecond)
	now.Store(&lapsed)
	if g.Leased("lot-1", "c-1") {
		t.Error("a lease outlived the time its tokens take to refill")
	}
}

// TestLeasedNeedsBoth: Leased spends a token of each limit the request is
// under, or none; with no limit at all it lets everything through.
func TestLeasedNeedsBoth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, b := setup(t, guard.Options{ClientRate: guard.Limit{Rate: 0.01, Burst: 32}, LotRate: guard.Limit{Rate: 0.01, Burst: 1}})
	// The client's limit leases 2 (1 held); the lot's burst of 1 never
	// leases, so Leased finds only half of what it needs, and takes none.
	if !admitOnce(ctx, g, "k-1", "lot-1", "c-1") {
		t.Fatal("first refused")
	}
	if g.Leased("lot-1", "c-1") {
		t.Fatal("Leased let a request through with no token of the lot's limit")
	}
	// Another replica spends the 30 tokens Redis has left; the one held
	// here is still here.
	other := b.replica(t)
	for i := range 31 {
		if ok, _ := other.AllowClient(ctx, "c-1"); ok != (i < 30) {
			t.Fatalf("the other replica's request %d: allowed %v", i, ok)
		}
	}
	if ok, _ := g.AllowClient(ctx, "c-1"); !ok {
		t.Fatal("the client's held token was spent by a Leased that let nothing through")
	}
	if ok, _ := g.AllowClient(ctx, "c-1"); ok {
		t.Fatal("a spent client allowed again")
	}
	free, _ := setup(t, guard.Options{ClientRate: guard.Unlimited, LotRate: guard.Unlimited})
	if !free.Leased("lot-1", "c-1") {
		t.Error("with no limit, Leased asks for a token anyway")
	}
}

// TestLeaseGivenBackOnRefusal: a lot's leased token taken for a request
// its client's limit then refuses is given back.
func TestLeaseGivenBackOnRefusal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start, end := at(0, 10), at(0, 12)
	g, b := setup(t, guard.Options{ClientRate: guard.Limit{Rate: 0.01, Burst: 1}, LotRate: guard.Limit{Rate: 0.01, Burst: 64}})
	if a := g.Admit(ctx, "k-1", "lot-1", start, end, false, "c-1"); !a.Allowed { // the lot leases 4: 3 held
		t.Fatalf("first: %+v", a)
	}
	if a := g.Admit(ctx, "k-2", "lot-1", start, end, false, "c-1"); !a.Asked || a.Allowed {
		t.Fatalf("the client's second, over its burst of 1: %+v", a)
	}
	// Another replica spends the 60 tokens Redis has left of the lot's;
	// the 3 held here are all still here.
	other := b.replica(t)
	for i := range 61 {
		if ok, _ := other.AllowLot(ctx, "lot-1"); ok != (i < 60) {
			t.Fatalf("the other replica's request %d: allowed %v", i, ok)
		}
	}
	held := 0
	for {
		if ok, _ := g.AllowLot(ctx, "lot-1"); !ok {
			break
		}
		held++
	}
	if held != 3 {
		t.Errorf("%d of the lot's tokens held after the client's refusal, want 3", held)
	}
}
