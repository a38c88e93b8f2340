package guard_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/guard"
)

// TestAdmit: Admit answers as Peek then AllowClient then AllowLot would, in
// one round trip: a stored response and a full window cost no limit, the
// lot's limit is not taken when the client's refuses, and the buckets are
// AllowLot's and AllowClient's own.
func TestAdmit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start, end := at(0, 10), at(0, 12)
	g, _ := setup(t, guard.Options{ClientRate: guard.Limit{Rate: 0.01, Burst: 2}, LotRate: guard.Limit{Rate: 0.01, Burst: 3}})

	a := g.Admit(ctx, "k-1", "lot-1", start, end, true, "c-1")
	if a.Replay || a.Full || !a.Asked || !a.Allowed {
		t.Fatalf("first: %+v", a)
	}
	want := guard.StoredResponse{RequestHash: []byte{1, 2}, Status: 201, Body: []byte(`{"id":"r"}`)}
	g.SaveResponse(ctx, "k-1", want)
	for range 3 { // replays take nothing
		a = g.Admit(ctx, "k-1", "lot-1", start, end, true, "c-1")
		if !a.Replay || a.Asked || a.Stored.Status != 201 || !bytes.Equal(a.Stored.Body, want.Body) {
			t.Fatalf("replay: %+v", a)
		}
	}
	fill(t, g, "lot-1", 0, 5)
	for range 3 { // a full window takes nothing
		a = g.Admit(ctx, "k-2", "lot-1", start, end, true, "c-1")
		if !a.Full || a.Asked || a.MarkFull == nil {
			t.Fatalf("full: %+v", a)
		}
	}
	// The client's second token, then its refusal: the lot's third token
	// is still there for another client.
	other := at(1, 10)
	if a = g.Admit(ctx, "k-3", "lot-1", other, other.Add(1), true, "c-1"); !a.Asked || !a.Allowed {
		t.Fatalf("client's second: %+v", a)
	}
	if a = g.Admit(ctx, "k-4", "lot-1", other, other.Add(1), true, "c-1"); !a.Asked || a.Allowed || a.RetryAfter <= 0 {
		t.Fatalf("client's third: %+v", a)
	}
	if ok, _ := g.AllowClient(ctx, "c-1"); ok {
		t.Fatal("AllowClient allows a client Admit found spent")
	}
	if ok, _ := g.AllowLot(ctx, "lot-1"); !ok {
		t.Fatal("the lot's third token was taken by a request its client's limit refused")
	}
	if a = g.Admit(ctx, "k-5", "lot-1", other, other.Add(1), true, "c-2"); !a.Asked || a.Allowed || a.RetryAfter <= 0 {
		t.Fatalf("lot spent: %+v", a)
	}
}

// TestInvalidateSaving: one call bumps the lot (a cached entry is gone)
// and stores every response.
func TestInvalidateSaving(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, _ := setup(t, guard.Options{})
	fill(t, g, "lot-1", 3, 5)
	saves := []cloud.KeyedResponse{
		{Key: "a", StoredResponse: guard.StoredResponse{RequestHash: []byte{1}, Status: 201, Body: []byte("A")}},
		{Key: "b", StoredResponse: guard.StoredResponse{RequestHash: []byte{2}, Status: 409, Body: []byte("B")}},
	}
	g.InvalidateSaving(ctx, "lot-1", true, saves)
	if _, _, _, ok := g.Availability(ctx, "lot-1", at(0, 10), at(0, 12)); ok {
		t.Error("the lot's entry survived its invalidation")
	}
	for _, s := range saves {
		got, ok := g.LoadResponse(ctx, s.Key)
		if !ok || got.Status != s.Status || !bytes.Equal(got.Body, s.Body) || !bytes.Equal(got.RequestHash, s.RequestHash) {
			t.Errorf("%s: %+v %v", s.Key, got, ok)
		}
	}
}
