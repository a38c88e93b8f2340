package bolt_test

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

// TestSignedOutbox: the store makes its key once and keeps it across
// restarts, and every event it puts in the outbox verifies with it.
func TestSignedOutbox(t *testing.T) {
	s, path := setup(t)
	pub := s.PublicKey()
	if len(pub) != ed25519.PublicKeySize {
		t.Fatalf("public key is %d bytes", len(pub))
	}
	ev := event("ev-1", "entry-1")
	ev.Note = "operator said so"
	if err := <-s.Record(edge.Record{Event: ev}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	if !s.PublicKey().Equal(pub) {
		t.Fatal("the key changed across a restart")
	}
	entries, err := s.Pending(10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("pending = %v, %v", entries, err)
	}
	var got protocol.GateEvent
	if err := json.Unmarshal(entries[0].Payload, &got); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify([]ed25519.PublicKey{pub}); err != nil {
		t.Fatalf("outbox event does not verify with the store's key: %v", err)
	}
	if got.Note != ev.Note {
		t.Fatalf("note = %q", got.Note)
	}

	other, _ := setup(t)
	if other.PublicKey().Equal(pub) {
		t.Fatal("two stores made the same key")
	}
}

func TestKeyRegisteredRemembered(t *testing.T) {
	s, path := setup(t)
	pub := s.PublicKey()
	if s.KeyRegistered(pub) {
		t.Fatal("a fresh store says its key is registered")
	}
	if err := s.MarkKeyRegistered(pub); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	if !s.KeyRegistered(pub) {
		t.Fatal("registration forgotten across a restart")
	}
	if s.KeyRegistered(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))) {
		t.Fatal("another key counts as registered")
	}
}
