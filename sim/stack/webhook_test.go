package stack_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/sim/stack"
)

func TestWebhookGate(t *testing.T) {
	var got atomic.Int32
	var sig atomic.Value
	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		sig.Store(r.Header.Get("Stripe-Signature"))
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"received":true}`)
	}))
	defer cloud.Close()
	g := stack.NewWebhookGate(cloud.URL)
	defer g.Close()
	gate := httptest.NewServer(g)
	defer gate.Close()

	send := func(session, typ string) (int, time.Duration) {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, gate.URL, strings.NewReader(
			`{"id":"evt_1","type":"`+typ+`","data":{"object":{"id":"`+session+`"}}}`))
		req.Header.Set("Stripe-Signature", "t=1,v1=abc")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}

	t.Run("PassesThrough", func(t *testing.T) {
		if status, _ := send("cs_a", "checkout.session.completed"); status != http.StatusOK || got.Load() != 1 {
			t.Fatalf("status %d, cloud got %d", status, got.Load())
		}
		if s := sig.Load(); s != "t=1,v1=abc" {
			t.Fatalf("signature header %q not passed on unchanged", s)
		}
		if g.PaidSeen("cs_a").IsZero() {
			t.Fatal("payment not noted")
		}
	})
	t.Run("HoldsASession", func(t *testing.T) {
		until := time.Now().Add(300 * time.Millisecond)
		g.HoldUntil("cs_b", until)
		status, took := send("cs_b", "checkout.session.completed")
		if status != http.StatusOK || took < 250*time.Millisecond {
			t.Fatalf("status %d after %s; want it held about 300ms", status, took)
		}
		if seen := g.PaidSeen("cs_b"); seen.Before(until) {
			t.Fatalf("payment seen at %s, before the hold ended at %s", seen, until)
		}
	})
	t.Run("ExpiryIsNoPayment", func(t *testing.T) {
		send("cs_c", "checkout.session.expired")
		if !g.PaidSeen("cs_c").IsZero() {
			t.Fatal("an expiry counted as a payment")
		}
	})
}
