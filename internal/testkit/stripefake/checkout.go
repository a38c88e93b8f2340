package stripefake

import (
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"strings"
	"time"
)

// Stripe's bounds on a Checkout Session's expires_at, measured from creation.
const (
	MinSessionLifetime = 30 * time.Minute
	MaxSessionLifetime = 24 * time.Hour
)

// maxAmount is the most Stripe takes in one payment, in the smallest
// currency unit (its amount_too_large).
const maxAmount = 99_999_999

// Session is the fake's record of a Checkout Session, as tests see it.
type Session struct {
	ID                string
	Mode              string
	Status            string // open, complete or expired
	PaymentStatus     string // unpaid or paid
	ClientReferenceID string
	Metadata          map[string]string
	// PaymentIntentMetadata is payment_intent_data[metadata] as sent.
	PaymentIntentMetadata map[string]string
	LineItems             []LineItem
	AmountTotal           int64
	Currency              string
	Created               time.Time
	ExpiresAt             time.Time
	SuccessURL            string
	CancelURL             string
	URL                   string
	PaymentIntentID       string // empty until paid
	// IdempotencyKey is the key the create call carried, if any.
	IdempotencyKey string
}

// LineItem is one price_data line of a session.
type LineItem struct {
	Name       string
	UnitAmount int64
	Quantity   int64
	Currency   string
}

// payment is what a completed session leaves behind for refunds to draw on.
type payment struct {
	intentID string
	chargeID string
	amount   int64
	refunded int64
	currency string
	settled  bool // false while an async payment method is pending
}

// sessionJSON is the wire shape: the fields stripe-go's CheckoutSession
// decodes and parkgate reads, with Stripe's nulls where Stripe sends them.
type sessionJSON struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	AmountSubtotal     int64             `json:"amount_subtotal"`
	AmountTotal        int64             `json:"amount_total"`
	CancelURL          *string           `json:"cancel_url"`
	ClientReferenceID  *string           `json:"client_reference_id"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Customer           *string           `json:"customer"`
	CustomerEmail      *string           `json:"customer_email"`
	ExpiresAt          int64             `json:"expires_at"`
	Livemode           bool              `json:"livemode"`
	Metadata           map[string]string `json:"metadata"`
	Mode               string            `json:"mode"`
	PaymentIntent      *string           `json:"payment_intent"`
	PaymentMethodTypes []string          `json:"payment_method_types"`
	PaymentStatus      string            `json:"payment_status"`
	Status             string            `json:"status"`
	SuccessURL         string            `json:"success_url"`
	UIMode             string            `json:"ui_mode"`
	URL                *string           `json:"url"`
}

func strOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Session) wire() sessionJSON {
	j := sessionJSON{
		ID:                 s.ID,
		Object:             "checkout.session",
		AmountSubtotal:     s.AmountTotal,
		AmountTotal:        s.AmountTotal,
		CancelURL:          strOrNull(s.CancelURL),
		ClientReferenceID:  strOrNull(s.ClientReferenceID),
		Created:            s.Created.Unix(),
		Currency:           s.Currency,
		ExpiresAt:          s.ExpiresAt.Unix(),
		Metadata:           maps.Clone(s.Metadata),
		Mode:               s.Mode,
		PaymentIntent:      strOrNull(s.PaymentIntentID),
		PaymentMethodTypes: []string{"card"},
		PaymentStatus:      s.PaymentStatus,
		Status:             s.Status,
		SuccessURL:         s.SuccessURL,
		UIMode:             "hosted",
	}
	// Stripe only shows the url while the session can still be paid.
	if s.Status == "open" {
		j.URL = strOrNull(s.URL)
	}
	return j
}

func (s *Session) clone() Session {
	c := *s
	c.Metadata = maps.Clone(s.Metadata)
	c.PaymentIntentMetadata = maps.Clone(s.PaymentIntentMetadata)
	c.LineItems = append([]LineItem(nil), s.LineItems...)
	return c
}

func (f *Fake) createSession(req *apiRequest) (any, error) {
	p := req.params
	mode, _ := p.str("mode")
	if mode == "" {
		return nil, missing("mode")
	}
	if mode != "payment" {
		return nil, invalid("mode", "", "stripefake supports only mode=payment, not %q.", mode)
	}
	if ui, _ := p.str("ui_mode"); ui != "" && ui != "hosted" {
		return nil, invalid("ui_mode", "", "stripefake supports only ui_mode=hosted.")
	}
	successURL, _ := p.str("success_url")
	if successURL == "" {
		return nil, missing("success_url")
	}
	cancelURL, _ := p.str("cancel_url")

	items := p.list("line_items")
	if len(items) == 0 {
		return nil, invalid("line_items", "parameter_missing", "You must provide at least one line item in `payment` mode.")
	}
	var lines []LineItem
	var total int64
	currency := ""
	for i, raw := range items {
		li, _ := raw.(form)
		prefix := fmt.Sprintf("line_items[%d]", i)
		if _, ok := li["price"]; ok {
			return nil, invalid(prefix+"[price]", "", "stripefake supports only price_data line items.")
		}
		pd := li.sub("price_data")
		if pd == nil {
			return nil, missing(prefix + "[price_data]")
		}
		cur, _ := pd.str("currency")
		if cur == "" {
			return nil, missing(prefix + "[price_data][currency]")
		}
		cur = strings.ToLower(cur)
		unit, ok, err := pd.int64Param("unit_amount", prefix+"[price_data][unit_amount]")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, missing(prefix + "[price_data][unit_amount]")
		}
		if unit < 0 {
			return nil, invalid(prefix+"[price_data][unit_amount]", "", "This value must be greater than or equal to 0.")
		}
		name, _ := pd.sub("product_data").str("name")
		if name == "" {
			return nil, missing(prefix + "[price_data][product_data][name]")
		}
		qty, ok, err := li.int64Param("quantity", prefix+"[quantity]")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, missing(prefix + "[quantity]")
		}
		if qty < 1 {
			return nil, invalid(prefix+"[quantity]", "", "This value must be greater than or equal to 1.")
		}
		if currency != "" && cur != currency {
			return nil, invalid(prefix+"[price_data][currency]", "", "All line items must use the same currency.")
		}
		currency = cur
		total += unit * qty
		lines = append(lines, LineItem{Name: name, UnitAmount: unit, Quantity: qty, Currency: cur})
	}
	// Stripe's ceiling on a payment, in the smallest currency unit
	// ($999,999.99): a larger total is refused, as Stripe refuses it.
	if total > maxAmount {
		return nil, invalid("", "amount_too_large",
			"The Checkout Session's total amount due must be no more than %d in the smallest currency unit.", maxAmount)
	}

	// Stripe keeps whole seconds; so does the fake, so that what a test
	// reads from Sessions equals what the client decoded.
	now := time.Unix(f.now().Unix(), 0)
	expiresAt := now.Add(MaxSessionLifetime)
	exp, ok, err := p.int64Param("expires_at", "expires_at")
	if err != nil {
		return nil, err
	}
	if ok {
		t := time.Unix(exp, 0)
		if t.Before(now.Add(MinSessionLifetime)) {
			return nil, invalid("expires_at", "", "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.")
		}
		if t.After(now.Add(MaxSessionLifetime)) {
			return nil, invalid("expires_at", "", "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.")
		}
		expiresAt = t
	}

	ref, _ := p.str("client_reference_id")
	if len(ref) > 200 {
		return nil, invalid("client_reference_id", "", "client_reference_id can be at most 200 characters.")
	}
	md, err := p.strMap("metadata", "metadata")
	if err != nil {
		return nil, err
	}
	pimd, err := p.sub("payment_intent_data").strMap("metadata", "payment_intent_data[metadata]")
	if err != nil {
		return nil, err
	}

	base := f.opts.BaseURL
	if base == "" {
		scheme := "http"
		if req.r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + req.r.Host
	}
	id := newID("cs_test_")
	s := &Session{
		ID:                    id,
		Mode:                  mode,
		Status:                "open",
		PaymentStatus:         "unpaid",
		ClientReferenceID:     ref,
		Metadata:              md,
		PaymentIntentMetadata: pimd,
		LineItems:             lines,
		AmountTotal:           total,
		Currency:              currency,
		Created:               now,
		ExpiresAt:             expiresAt,
		SuccessURL:            successURL,
		CancelURL:             cancelURL,
		URL:                   strings.TrimRight(base, "/") + "/pay/" + id,
		IdempotencyKey:        req.idemKey,
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions[id] = s
	f.sessionOrder = append(f.sessionOrder, id)
	return s.wire(), nil
}

func (f *Fake) getSession(req *apiRequest) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.sessionLocked(req.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return s.wire(), nil
}

func (f *Fake) expireSession(req *apiRequest) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.sessionLocked(req.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if s.Status != "open" {
		return nil, invalid("", "", `Only Checkout Sessions with a status in ["open"] can be expired.`)
	}
	f.expireLocked(s, eventRequest{ID: strOrNull(req.reqID), IdempotencyKey: strOrNull(req.idemKey)})
	return s.wire(), nil
}

// sessionLocked finds a session, first expiring it if its time has passed:
// a reader must never see "open" on a session Stripe would have expired.
func (f *Fake) sessionLocked(id string) (*Session, error) {
	s, ok := f.sessions[id]
	if !ok {
		return nil, noSuch("checkout.session", "session", id)
	}
	if s.Status == "open" && !f.now().Before(s.ExpiresAt) {
		f.expireLocked(s, eventRequest{})
	}
	return s, nil
}

func (f *Fake) expireLocked(s *Session, er eventRequest) {
	s.Status = "expired"
	f.emitLocked("checkout.session.expired", s.wire(), er)
}

// ErrNotOpen is returned by Pay, PayAsync and Expire for a session that is
// already complete or expired.
var ErrNotOpen = errors.New("stripefake: session is not open")

// ErrNotFound is returned for an unknown session id.
var ErrNotFound = errors.New("stripefake: no such session")

func (f *Fake) openSessionLocked(id string) (*Session, error) {
	s, err := f.sessionLocked(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if s.Status != "open" {
		return nil, fmt.Errorf("%w: %s is %s", ErrNotOpen, id, s.Status)
	}
	return s, nil
}

// Pay completes an open session as a card payment would: status complete,
// payment_status paid, a new payment intent, and a checkout.session.completed
// event. It returns the payment intent id.
func (f *Fake) Pay(sessionID string) (string, error) {
	return f.complete(sessionID, true)
}

// PayAsync completes an open session with a delayed payment method (a bank
// debit): checkout.session.completed arrives with payment_status unpaid, and
// SettleAsync later decides the outcome.
func (f *Fake) PayAsync(sessionID string) (string, error) {
	return f.complete(sessionID, false)
}

func (f *Fake) complete(sessionID string, settled bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.openSessionLocked(sessionID)
	if err != nil {
		return "", err
	}
	p := &payment{
		intentID: newID("pi_"),
		chargeID: newID("ch_"),
		amount:   s.AmountTotal,
		currency: s.Currency,
		settled:  settled,
	}
	f.payments[p.intentID] = p
	f.charges[p.chargeID] = p.intentID
	s.Status = "complete"
	s.PaymentIntentID = p.intentID
	if settled {
		s.PaymentStatus = "paid"
	}
	f.emitLocked("checkout.session.completed", s.wire(), eventRequest{})
	return p.intentID, nil
}

// SettleAsync ends a PayAsync payment: succeeded marks the session paid and
// sends checkout.session.async_payment_succeeded, otherwise
// checkout.session.async_payment_failed is sent and the session stays unpaid.
func (f *Fake) SettleAsync(sessionID string, succeeded bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[sessionID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, sessionID)
	}
	p := f.payments[s.PaymentIntentID]
	if s.Status != "complete" || p == nil || p.settled || s.PaymentStatus != "unpaid" {
		return fmt.Errorf("stripefake: session %s has no pending async payment", sessionID)
	}
	if !succeeded {
		// A failed debit leaves nothing to refund; forget the intent.
		delete(f.charges, p.chargeID)
		delete(f.payments, p.intentID)
		f.emitLocked("checkout.session.async_payment_failed", s.wire(), eventRequest{})
		return nil
	}
	p.settled = true
	s.PaymentStatus = "paid"
	f.emitLocked("checkout.session.async_payment_succeeded", s.wire(), eventRequest{})
	return nil
}

// Expire expires an open session as the Stripe dashboard would, sending
// checkout.session.expired.
func (f *Fake) Expire(sessionID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.openSessionLocked(sessionID)
	if err != nil {
		return err
	}
	f.expireLocked(s, eventRequest{})
	return nil
}

// ExpireDue expires every open session whose expires_at has passed and
// reports how many it expired. Options.SweepInterval calls it periodically.
func (f *Fake) ExpireDue() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	now := f.now()
	for _, id := range f.sessionOrder {
		s := f.sessions[id]
		if s.Status == "open" && !now.Before(s.ExpiresAt) {
			f.expireLocked(s, eventRequest{})
			n++
		}
	}
	return n
}

// Sessions returns a copy of every session in creation order.
func (f *Fake) Sessions() []Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Session, 0, len(f.sessionOrder))
	for _, id := range f.sessionOrder {
		out = append(out, f.sessions[id].clone())
	}
	return out
}

// Session returns a copy of one session.
func (f *Fake) Session(id string) (Session, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return Session{}, false
	}
	return s.clone(), true
}

var payTmpl = template.Must(template.New("pay").Parse(`<!doctype html>
<title>stripefake checkout</title>
<h1>{{.Name}}</h1>
<p>{{.Amount}} {{.Currency}} · session {{.ID}} · {{.Status}}</p>
{{if eq .Status "open"}}<form method="post">
<button name="action" value="pay">Pay</button>
<button name="action" value="cancel">Cancel</button>
</form>{{end}}
`))

// payPage stands in for Stripe's hosted page so a person driving the
// simulator in a browser can pay.
func (f *Fake) payPage(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	s, err := f.sessionLocked(r.PathValue("id"))
	var view struct {
		ID, Name, Currency, Status string
		Amount                     int64
	}
	if err == nil {
		view.ID, view.Currency, view.Status, view.Amount = s.ID, s.Currency, s.Status, s.AmountTotal
		if len(s.LineItems) > 0 {
			view.Name = s.LineItems[0].Name
		}
	}
	f.mu.Unlock()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = payTmpl.Execute(w, view)
}

func (f *Fake) payForm(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s, ok := f.Session(id)
	if !ok {
		http.NotFound(w, r)
		return
	}
	target := s.SuccessURL
	if r.FormValue("action") == "cancel" {
		target = s.CancelURL
	} else if _, err := f.Pay(id); err != nil {
		http.Error(w, err.Error(), http.StatusGone)
		return
	}
	if target == "" {
		target = "/pay/" + id
	}
	http.Redirect(w, r, strings.ReplaceAll(target, "{CHECKOUT_SESSION_ID}", id), http.StatusSeeOther)
}
