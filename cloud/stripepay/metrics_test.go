package stripepay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

// callCount is how many calls callSeconds has seen for op and outcome,
// and the seconds they took in all.
func callCount(t *testing.T, op, outcome string) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := callSeconds.WithLabelValues(op, outcome).(interface{ Write(*dto.Metric) error }).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// TestCallMetrics: every call that reaches Stripe is timed once under its
// operation and how it ended, and a call refused before it is sent is
// not. Not parallel: the histogram is the process's, and the parallel
// tests of this package wait while this one runs.
func TestCallMetrics(t *testing.T) {
	b := setup(t, nil)
	ctx := context.Background()
	type key struct{ op, outcome string }
	before := map[key]uint64{}
	keys := []key{
		{opCreateSession, "ok"}, {opCreateSession, "refused"}, {opCreateSession, "unavailable"},
		{opExpireSession, "ok"}, {opExpireSession, "refused"},
		{opRefund, "ok"}, {opRefund, "refused"}, {opPartialRefund, "ok"},
	}
	for _, k := range keys {
		before[k], _ = callCount(t, k.op, k.outcome)
	}

	s, err := b.client.CreateCheckoutSession(ctx, checkout("res-m1", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	bad := checkout("res-m2", time.Time{})
	bad.IdempotencyKey = "" // refused here, never sent
	if _, err := b.client.CreateCheckoutSession(ctx, bad); err == nil {
		t.Fatal("a checkout without a key was sent")
	}
	if err := b.client.ExpireSession(ctx, s.ID, "expire:res-m1"); err != nil {
		t.Fatal(err)
	}
	if err := b.client.ExpireSession(ctx, "cs_test_nope", ""); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("expire unknown: %v", err)
	}
	paid, err := b.client.CreateCheckoutSession(ctx, checkout("res-m3", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	pi, err := b.fake.Pay(paid.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Paid before it could be expired: answered, and timed as ok.
	if err := b.client.ExpireSession(ctx, paid.ID, "expire:res-m3"); !errors.Is(err, cloud.ErrSessionCompleted) {
		t.Fatalf("expire a paid session: %v", err)
	}
	if _, err := b.client.RefundAmount(ctx, pi, 100, "refund:m3:part"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Refund(ctx, pi, "refund:m3"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Refund(ctx, "pi_unknown", "refund:x"); err == nil {
		t.Fatal("refund of an unknown payment intent")
	}
	// A request Stripe refuses (a metadata value over 500 characters):
	// the answer is Stripe's, so the call is timed.
	long := checkout("res-m4", time.Time{})
	long.LotID = strings.Repeat("l", 501)
	if _, err := b.client.CreateCheckoutSession(ctx, long); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("metadata over 500 characters: %v", err)
	}
	b.fake.SetOutage(stripefake.OutageServerError)
	if _, err := b.client.CreateCheckoutSession(ctx, checkout("res-m5", time.Time{})); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("outage: %v", err)
	}
	b.fake.SetOutage(stripefake.OutageNone)

	want := map[key]uint64{
		{opCreateSession, "ok"}: 2, {opCreateSession, "refused"}: 1, {opCreateSession, "unavailable"}: 1,
		{opExpireSession, "ok"}: 2, {opExpireSession, "refused"}: 1,
		{opRefund, "ok"}: 1, {opRefund, "refused"}: 1, {opPartialRefund, "ok"}: 1,
	}
	for _, k := range keys {
		n, sum := callCount(t, k.op, k.outcome)
		if got := n - before[k]; got != want[k] {
			t.Errorf("%s/%s: %d calls timed, want %d", k.op, k.outcome, got, want[k])
		}
		if want[k] > 0 && sum <= 0 {
			t.Errorf("%s/%s: %d calls in %v s", k.op, k.outcome, n, sum)
		}
	}
}
