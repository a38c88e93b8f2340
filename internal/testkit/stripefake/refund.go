package stripefake

import (
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"time"
)

// Refund is the fake's record of a refund, as tests see it.
type Refund struct {
	ID              string
	PaymentIntentID string
	ChargeID        string
	Amount          int64
	Currency        string
	Reason          string
	Status          string
	Metadata        map[string]string
	Created         time.Time
	IdempotencyKey  string
}

type refundJSON struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Amount             int64             `json:"amount"`
	BalanceTransaction *string           `json:"balance_transaction"`
	Charge             string            `json:"charge"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Metadata           map[string]string `json:"metadata"`
	PaymentIntent      string            `json:"payment_intent"`
	Reason             *string           `json:"reason"`
	ReceiptNumber      *string           `json:"receipt_number"`
	Status             string            `json:"status"`
}

func (r *Refund) wire() refundJSON {
	return refundJSON{
		ID:            r.ID,
		Object:        "refund",
		Amount:        r.Amount,
		Charge:        r.ChargeID,
		Created:       r.Created.Unix(),
		Currency:      r.Currency,
		Metadata:      maps.Clone(r.Metadata),
		PaymentIntent: r.PaymentIntentID,
		Reason:        strOrNull(r.Reason),
		Status:        r.Status,
	}
}

func (f *Fake) createRefund(req *apiRequest) (any, error) {
	p := req.params
	pi, _ := p.str("payment_intent")
	ch, _ := p.str("charge")
	if pi == "" && ch == "" {
		return nil, invalid("payment_intent", "parameter_missing", "One of `charge` or `payment_intent` is required.")
	}
	amount, hasAmount, err := p.int64Param("amount", "amount")
	if err != nil {
		return nil, err
	}
	if hasAmount && amount < 1 {
		return nil, invalid("amount", "", "Invalid positive integer")
	}
	reason, _ := p.str("reason")
	switch reason {
	case "", "duplicate", "fraudulent", "requested_by_customer":
	default:
		return nil, invalid("reason", "", "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer")
	}
	md, err := p.strMap("metadata", "metadata")
	if err != nil {
		return nil, err
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if ch != "" {
		owner, ok := f.charges[ch]
		if !ok {
			return nil, noSuch("charge", "charge", ch)
		}
		if pi != "" && pi != owner {
			return nil, invalid("charge", "", "The charge %s does not belong to payment intent %s.", ch, pi)
		}
		pi = owner
	}
	pay, ok := f.payments[pi]
	if !ok {
		return nil, noSuch("payment_intent", "payment_intent", pi)
	}
	if !pay.settled {
		return nil, invalid("payment_intent", "charge_not_refundable",
			"This PaymentIntent (%s) does not have a successful charge to refund.", pi)
	}
	left := pay.amount - pay.refunded
	if left <= 0 {
		return nil, invalid("", "charge_already_refunded", "Charge %s has already been refunded.", pay.chargeID)
	}
	if !hasAmount {
		amount = left
	}
	if amount > left {
		return nil, invalid("amount", "amount_too_large",
			"Refund amount (%d) is greater than unrefunded amount on charge (%d)", amount, left)
	}
	pay.refunded += amount
	r := &Refund{
		ID:              newID("re_"),
		PaymentIntentID: pi,
		ChargeID:        pay.chargeID,
		Amount:          amount,
		Currency:        pay.currency,
		Reason:          reason,
		Status:          "succeeded",
		Metadata:        md,
		Created:         f.now(),
		IdempotencyKey:  req.idemKey,
	}
	f.refunds = append(f.refunds, r)
	return r.wire(), nil
}

type listJSON struct {
	Object  string `json:"object"`
	Data    []any  `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

// listRefunds pages newest first, as Stripe lists, honouring the filters and
// cursor stripe-go's iterator sends.
func (f *Fake) listRefunds(req *apiRequest) (any, error) {
	p := req.params
	pi, _ := p.str("payment_intent")
	ch, _ := p.str("charge")
	after, _ := p.str("starting_after")
	limit := 10
	if s, ok := p.str("limit"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return nil, invalid("limit", "", "Invalid limit: must be an integer between 1 and 100.")
		}
		limit = n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := listJSON{Object: "list", Data: []any{}, URL: "/v1/refunds"}
	skipping := after != ""
	for i := len(f.refunds) - 1; i >= 0; i-- {
		r := f.refunds[i]
		if skipping {
			skipping = r.ID != after
			continue
		}
		if (pi != "" && r.PaymentIntentID != pi) || (ch != "" && r.ChargeID != ch) {
			continue
		}
		if len(out.Data) == limit {
			out.HasMore = true
			break
		}
		out.Data = append(out.Data, r.wire())
	}
	return out, nil
}

func (f *Fake) getRefund(req *apiRequest) (any, error) {
	id := req.r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.refunds {
		if r.ID == id {
			return r.wire(), nil
		}
	}
	return nil, noSuch("refund", "id", id)
}

func (f *Fake) getEvent(req *apiRequest) (any, error) {
	id := req.r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	ev, ok := f.events[id]
	if !ok {
		return nil, noSuch("event", "id", id)
	}
	return json.RawMessage(ev.Payload), nil
}

// Refunds returns a copy of every refund in creation order.
func (f *Fake) Refunds() []Refund {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Refund, 0, len(f.refunds))
	for _, r := range f.refunds {
		c := *r
		c.Metadata = maps.Clone(r.Metadata)
		out = append(out, c)
	}
	return out
}

var _ http.Handler = (*Fake)(nil)
