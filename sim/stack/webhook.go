package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// WebhookGate stands between the Stripe stand-in and the cloud's webhook
// endpoint, as the internet does between Stripe and a real service. It
// passes every delivery through unchanged (the signature stays valid) but
// can hold back a session's events until a given time: a payment made while
// a hold runs out reaches the cloud only after the hold ended, which is the
// gap the cloud must close with a refund. It also notes when each session's
// payment event first got through, which is when the cloud could know of it.
type WebhookGate struct {
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	target   string
	holds    map[string]time.Time // session id → held until
	paidSeen map[string]time.Time // session id → first payment event accepted by the cloud
	received int
	passed   int
	// accepted are the deliveries the cloud answered 2xx, byte for byte,
	// for Replay.
	accepted []delivery
}

type delivery struct {
	body   []byte
	header http.Header
}

// NewWebhookGate forwards to target (the cloud's /v1/payments/webhook).
func NewWebhookGate(target string) *WebhookGate {
	ctx, cancel := context.WithCancel(context.Background())
	return &WebhookGate{
		target:   target,
		client:   &http.Client{Timeout: 30 * time.Second},
		ctx:      ctx,
		cancel:   cancel,
		holds:    map[string]time.Time{},
		paidSeen: map[string]time.Time{},
	}
}

// SetTarget points the gate at another address of the cloud.
func (g *WebhookGate) SetTarget(target string) {
	g.mu.Lock()
	g.target = target
	g.mu.Unlock()
}

// HoldUntil holds every event of the session until t.
func (g *WebhookGate) HoldUntil(sessionID string, t time.Time) {
	g.mu.Lock()
	g.holds[sessionID] = t
	g.mu.Unlock()
}

// PaidSeen returns when the cloud first accepted a payment event of the
// session (zero if it has not).
func (g *WebhookGate) PaidSeen(sessionID string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paidSeen[sessionID]
}

// Counts returns the deliveries received from the stand-in and passed on.
func (g *WebhookGate) Counts() (received, passed int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.received, g.passed
}

// Close releases every held delivery with a 503, so the stand-in's Close
// does not wait for holds that no longer matter.
func (g *WebhookGate) Close() { g.cancel() }

func (g *WebhookGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Object struct {
				ID string `json:"id"`
			} `json:"object"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &ev) // an unreadable event passes through for the cloud to refuse
	session := ev.Data.Object.ID

	g.mu.Lock()
	g.received++
	until := g.holds[session]
	g.mu.Unlock()
	if d := time.Until(until); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-g.ctx.Done():
			t.Stop()
			http.Error(w, "simulation over", http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	g.mu.Lock()
	target := g.target
	g.mu.Unlock()
	req, err := http.NewRequestWithContext(g.ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for _, h := range []string{"Content-Type", "Stripe-Signature", "User-Agent"} {
		req.Header.Set(h, r.Header.Get(h))
	}
	resp, err := g.client.Do(req)
	if err != nil {
		http.Error(w, "cloud unreachable: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	g.mu.Lock()
	g.passed++
	if resp.StatusCode/100 == 2 {
		g.accepted = append(g.accepted, delivery{body: body, header: req.Header.Clone()})
	}
	if resp.StatusCode/100 == 2 && isPayment(ev.Type) {
		if _, ok := g.paidSeen[session]; !ok {
			g.paidSeen[session] = time.Now()
		}
	}
	g.mu.Unlock()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

// Replay posts every delivery the cloud accepted again, byte for byte with
// its original signature, as someone who captured them would: the cloud
// must change nothing (a duplicate is acknowledged, a stale signature
// refused). It returns how many were acknowledged 2xx and how many refused
// 4xx; anything else is an error.
func (g *WebhookGate) Replay(ctx context.Context) (acked, refused int, err error) {
	g.mu.Lock()
	ds := append([]delivery(nil), g.accepted...)
	target := g.target
	g.mu.Unlock()
	for _, d := range ds {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(d.body))
		if err != nil {
			return acked, refused, err
		}
		req.Header = d.header.Clone()
		resp, err := g.client.Do(req)
		if err != nil {
			return acked, refused, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode / 100 {
		case 2:
			acked++
		case 4:
			refused++
		default:
			return acked, refused, fmt.Errorf("replayed delivery answered %s", resp.Status)
		}
	}
	return acked, refused, nil
}

func isPayment(typ string) bool {
	return typ == "checkout.session.completed" || typ == "checkout.session.async_payment_succeeded"
}
