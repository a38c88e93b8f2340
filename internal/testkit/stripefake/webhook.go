package stripefake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Event is an event the fake created, with the outcome of its deliveries.
type Event struct {
	ID      string
	Type    string
	Created time.Time
	// Payload is the exact body delivered (and signed).
	Payload []byte
	// Attempts counts every POST to the endpoint, Deliveries the ones
	// answered 2xx; more than one delivery means the event was redelivered.
	Attempts   int
	Deliveries int
	LastStatus int // 0 when the last attempt got no response
	LastError  string
}

type eventRequest struct {
	ID             *string `json:"id"`
	IdempotencyKey *string `json:"idempotency_key"`
}

type eventJSON struct {
	ID              string       `json:"id"`
	Object          string       `json:"object"`
	APIVersion      string       `json:"api_version"`
	Created         int64        `json:"created"`
	Data            eventData    `json:"data"`
	Livemode        bool         `json:"livemode"`
	PendingWebhooks int          `json:"pending_webhooks"`
	Request         eventRequest `json:"request"`
	Type            string       `json:"type"`
}

type eventData struct {
	Object any `json:"object"`
}

// SetWebhook sets the endpoint events go to and the secrets that sign them.
// With several secrets each delivery carries one v1 signature per secret, as
// Stripe does while an endpoint's secret is being rolled.
func (f *Fake) SetWebhook(url string, secrets ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.webhookURL = url
	f.webhookSecrets = append([]string(nil), secrets...)
}

// PauseWebhooks holds new events instead of sending them, for tests that
// want to choose the order with Redeliver or release them with Resume.
func (f *Fake) PauseWebhooks() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = true
}

// ResumeWebhooks sends the held events, one after another in creation
// order, and stops holding new ones.
func (f *Fake) ResumeWebhooks() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = false
	held := f.held
	f.held = nil
	if len(held) > 0 && f.webhookURL != "" {
		f.startDeliveryLocked(held)
	}
}

// Redeliver sends the named events again, one after another in the order
// given, each with the usual retries: duplicates and out-of-order delivery
// are both normal for Stripe and receivers must cope. Held events named here
// are no longer held.
func (f *Fake) Redeliver(eventIDs ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.webhookURL == "" {
		return fmt.Errorf("stripefake: redeliver: no webhook url set")
	}
	for _, id := range eventIDs {
		if _, ok := f.events[id]; !ok {
			return fmt.Errorf("stripefake: redeliver: no such event %s", id)
		}
	}
	named := map[string]bool{}
	for _, id := range eventIDs {
		named[id] = true
	}
	kept := f.held[:0]
	for _, id := range f.held {
		if !named[id] {
			kept = append(kept, id)
		}
	}
	f.held = kept
	f.startDeliveryLocked(append([]string(nil), eventIDs...))
	return nil
}

// Events returns a copy of every event in creation order.
func (f *Fake) Events() []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Event, 0, len(f.eventOrder))
	for _, id := range f.eventOrder {
		e := *f.events[id]
		e.Payload = bytes.Clone(e.Payload)
		out = append(out, e)
	}
	return out
}

// Flush waits until no delivery is in flight, retries included. Events held
// by PauseWebhooks are not in flight.
func (f *Fake) Flush(ctx context.Context) error {
	f.mu.Lock()
	if f.inflight == 0 {
		f.mu.Unlock()
		return nil
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stripefake: flush: %w", ctx.Err())
	}
}

// SignatureHeader builds a Stripe-Signature header value for payload signed
// at t, with one v1 entry per secret: hex HMAC-SHA256 of "<unix t>.<payload>".
func SignatureHeader(payload []byte, t time.Time, secrets ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, s := range secrets {
		mac := hmac.New(sha256.New, []byte(s))
		mac.Write([]byte(ts))
		mac.Write([]byte("."))
		mac.Write(payload)
		b.WriteString(",v1=" + hex.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}

func (f *Fake) emitLocked(typ string, obj any, er eventRequest) {
	now := f.now()
	ev := eventJSON{
		ID:              newID("evt_"),
		Object:          "event",
		APIVersion:      APIVersion,
		Created:         now.Unix(),
		Data:            eventData{Object: obj},
		PendingWebhooks: 1,
		Request:         er,
		Type:            typ,
	}
	payload, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("stripefake: encode event: %v", err)) // only our own types reach here
	}
	f.events[ev.ID] = &Event{ID: ev.ID, Type: typ, Created: time.Unix(ev.Created, 0), Payload: payload}
	f.eventOrder = append(f.eventOrder, ev.ID)
	switch {
	case f.paused:
		f.held = append(f.held, ev.ID)
	case f.webhookURL != "":
		f.startDeliveryLocked([]string{ev.ID})
	}
}

// startDeliveryLocked sends ids in order on one goroutine; each call is a
// separate goroutine so independent events race as they do from Stripe.
func (f *Fake) startDeliveryLocked(ids []string) {
	if f.ctx.Err() != nil {
		return
	}
	if f.inflight == 0 {
		f.idle = make(chan struct{})
	}
	f.inflight++
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.deliveryDone()
		for _, id := range ids {
			f.deliver(id)
		}
	}()
}

func (f *Fake) deliveryDone() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight--
	if f.inflight == 0 {
		close(f.idle)
	}
}

// deliver posts one event until a 2xx answer or MaxAttempts, waiting
// RetryBase·2^n (capped at RetryCap) between attempts. Each attempt is signed
// afresh, as Stripe's are, so a slow retry never arrives with a stale stamp.
func (f *Fake) deliver(id string) {
	wait := f.opts.RetryBase
	for attempt := 1; ; attempt++ {
		f.mu.Lock()
		url, secrets := f.webhookURL, f.webhookSecrets
		payload := f.events[id].Payload
		now := f.now()
		f.mu.Unlock()
		if url == "" {
			return
		}
		status, err := f.post(url, payload, SignatureHeader(payload, now, secrets...))
		ok := err == nil && status >= 200 && status < 300

		f.mu.Lock()
		ev := f.events[id]
		ev.Attempts++
		ev.LastStatus = status
		ev.LastError = ""
		if err != nil {
			ev.LastError = err.Error()
		} else if !ok {
			ev.LastError = "status " + strconv.Itoa(status)
		}
		if ok {
			ev.Deliveries++
		}
		f.mu.Unlock()
		if ok || attempt >= f.opts.MaxAttempts {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-f.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, f.opts.RetryCap)
	}
}

func (f *Fake) post(url string, payload []byte, sig string) (int, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	req.Header.Set("Stripe-Signature", sig)
	resp, err := f.opts.WebhookClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}
