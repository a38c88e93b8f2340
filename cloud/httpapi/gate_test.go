package httpapi

import "testing"

func TestLotGate(t *testing.T) {
	t.Parallel()
	g := lotGate{cap: 2}
	a1, ok1 := g.enter("a")
	a2, ok2 := g.enter("a")
	if !ok1 || !ok2 {
		t.Fatal("refused under the cap")
	}
	if _, ok := g.enter("a"); ok {
		t.Fatal("admitted over the cap")
	}
	b1, ok := g.enter("b")
	if !ok {
		t.Fatal("a full lot refused another lot")
	}
	a1()
	a3, ok := g.enter("a")
	if !ok {
		t.Fatal("refused after a place came free")
	}
	a2()
	a3()
	b1()
	if len(g.n) != 0 {
		t.Fatalf("lots left in the map after all left: %v", g.n)
	}
}
