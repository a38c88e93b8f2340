package guard_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
)

func TestParseLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    map[string]guard.Limit
		wantErr bool
	}{
		{"Empty", "", map[string]guard.Limit{}, false},
		{"Two", "lot-a=100/200,lot-b=5/10", map[string]guard.Limit{"lot-a": {Rate: 100, Burst: 200}, "lot-b": {Rate: 5, Burst: 10}}, false},
		{"Spaces", " lot-a = 1.5 / 3 , ", map[string]guard.Limit{"lot-a": {Rate: 1.5, Burst: 3}}, false},
		{"BurstFromRate", "lot-a=2.5", map[string]guard.Limit{"lot-a": {Rate: 2.5, Burst: 3}}, false},
		{"Off", "lot-a=off", map[string]guard.Limit{"lot-a": guard.Unlimited}, false},
		{"NoEquals", "lot-a", nil, true},
		{"NoLot", "=5/10", nil, true},
		{"ZeroRate", "lot-a=0/10", nil, true},
		{"NegativeRate", "lot-a=-1/10", nil, true},
		{"BadBurst", "lot-a=5/x", nil, true},
		{"ZeroBurst", "lot-a=5/0", nil, true},
		{"Duplicate", "lot-a=5/10,lot-a=6/10", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := guard.ParseLimits(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseLimits(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseLimits(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestAllowLot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("BurstThenRefuse", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{LotRate: guard.Limit{Rate: 1, Burst: 3}})
		for i := range 3 {
			if ok, _ := g.AllowLot(ctx, "lot-1"); !ok {
				t.Fatalf("request %d refused within the burst", i+1)
			}
		}
		ok, retry := g.AllowLot(ctx, "lot-1")
		if ok {
			t.Fatal("request past the burst allowed")
		}
		if retry <= 0 || retry > time.Second {
			t.Fatalf("retryAfter = %v, want in (0, 1s] at 1/s", retry)
		}
		if ok, _ := g.AllowLot(ctx, "lot-2"); !ok {
			t.Fatal("another lot was refused: limits are per lot")
		}
	})

	t.Run("PerLotOverride", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{
			LotRate:  guard.Limit{Rate: 100, Burst: 100},
			LotRates: map[string]guard.Limit{"hot": {Rate: 1, Burst: 2}, "free": guard.Unlimited},
		})
		if n := countAllowed(g.AllowLot, "hot", 10); n != 2 {
			t.Fatalf("hot lot allowed %d of 10, want its burst 2", n)
		}
		if n := countAllowed(g.AllowLot, "cold", 50); n != 50 {
			t.Fatalf("default lot allowed %d of 50, want all", n)
		}
		if n := countAllowed(g.AllowLot, "free", 500); n != 500 {
			t.Fatalf("unlimited lot allowed %d of 500, want all", n)
		}
	})

	t.Run("ReplicasShareTheLimit", func(t *testing.T) {
		t.Parallel()
		a, b := setup(t, guard.Options{LotRate: guard.Limit{Rate: 0.1, Burst: 4}})
		other := b.replica(t)
		allowed := 0
		for i := range 10 {
			g := a
			if i%2 == 1 {
				g = other
			}
			if ok, _ := g.AllowLot(ctx, "lot-1"); ok {
				allowed++
			}
		}
		if allowed != 4 {
			t.Fatalf("two replicas allowed %d together, want the one shared burst 4", allowed)
		}
	})

	t.Run("EmptyLotNotLimited", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t, guard.Options{LotRate: guard.Limit{Rate: 1, Burst: 1}})
		if n := countAllowed(g.AllowLot, "", 5); n != 5 {
			t.Fatalf("empty lot allowed %d of 5", n)
		}
	})
}

func TestAllowClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, _ := setup(t, guard.Options{
		ClientRate: guard.Limit{Rate: 0.5, Burst: 2},
		LotRate:    guard.Limit{Rate: 0.5, Burst: 2},
	})
	if n := countAllowed(g.AllowClient, "10.0.0.1", 5); n != 2 {
		t.Fatalf("client allowed %d of 5, want burst 2", n)
	}
	ok, retry := g.AllowClient(ctx, "10.0.0.1")
	if ok || retry <= time.Second || retry > 2*time.Second {
		t.Fatalf("AllowClient = %v, %v; want refused with retry in (1s, 2s] at 0.5/s", ok, retry)
	}
	if n := countAllowed(g.AllowClient, "10.0.0.2", 2); n != 2 {
		t.Fatal("a second client was limited by the first")
	}
	if n := countAllowed(g.AllowLot, "10.0.0.1", 2); n != 2 {
		t.Fatal("a lot with a client's id shared its limit: scopes must not mix")
	}
}

func countAllowed(allow func(context.Context, string) (bool, time.Duration), id string, n int) int {
	allowed := 0
	for range n {
		if ok, _ := allow(context.Background(), id); ok {
			allowed++
		}
	}
	return allowed
}

// TestRefusalIsRemembered: once Redis refuses a lot until some time, the
// replica refuses it itself until then without asking Redis (shown by
// wiping the limit's state in Redis, which would let a request through),
// and asks again afterwards.
func TestRefusalIsRemembered(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	g, b := setup(t, guard.Options{LotRate: guard.Limit{Rate: 1, Burst: 1}, Now: clock})
	ctx := context.Background()
	if ok, _ := g.AllowLot(ctx, "lot-a"); !ok {
		t.Fatal("first request refused")
	}
	ok, after := g.AllowLot(ctx, "lot-a")
	if ok || after <= 0 || after > time.Second {
		t.Fatalf("second request: ok=%v retry after %v; want refused for up to 1s", ok, after)
	}
	deleteNamespace(t, b.rdb, b.ns)
	if ok, again := g.AllowLot(ctx, "lot-a"); ok || again <= 0 || again > after {
		t.Fatalf("within the refusal: ok=%v retry after %v; want refused without asking Redis", ok, again)
	}
	if ok, _ := g.AllowLot(ctx, "lot-b"); !ok {
		t.Fatal("another lot refused")
	}
	mu.Lock()
	now = now.Add(after)
	mu.Unlock()
	if ok, _ := g.AllowLot(ctx, "lot-a"); !ok {
		t.Fatal("refused after the refusal ran out, with Redis' state wiped")
	}
}
