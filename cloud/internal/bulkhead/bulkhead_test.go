package bulkhead

import (
	"context"
	"testing"
	"time"
)

func TestPerKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := &PerKey{Cap: 2, Wait: 20 * time.Millisecond}
	a1, ok1 := g.Enter(ctx, "a")
	a2, ok2 := g.Enter(ctx, "a")
	if !ok1 || !ok2 {
		t.Fatal("refused under the cap")
	}
	if _, ok := g.Enter(ctx, "a"); ok {
		t.Fatal("admitted over the cap with nobody leaving")
	}
	b1, ok := g.Enter(ctx, "b")
	if !ok {
		t.Fatal("a full lot refused another lot")
	}
	// A waiter gets the place that frees up while it waits.
	g.Wait = 5 * time.Second
	got := make(chan bool)
	go func() {
		leave, ok := g.Enter(ctx, "a")
		if ok {
			leave()
		}
		got <- ok
	}()
	time.Sleep(10 * time.Millisecond)
	a1()
	if !<-got {
		t.Fatal("a waiter did not get the place that came free")
	}
	// A waiter whose request has ended gives up at once.
	a3, ok := g.Enter(ctx, "a")
	if !ok {
		t.Fatal("refused with a place free")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	start := time.Now()
	if _, ok := g.Enter(cctx, "a"); ok || time.Since(start) > time.Second {
		t.Fatalf("entered a full lot, or waited %v, for a request that had ended", time.Since(start))
	}
	a3()
	a2()
	b1()
	if g.Len() != 0 {
		t.Fatalf("lots left in the map after all left: %v", g.slots)
	}
}
