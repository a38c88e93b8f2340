package stripepay

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parkgate/parkgate/cloud"
)

// The operations callSeconds tells apart, as its op label.
const (
	opCreateSession = "create_checkout_session"
	opExpireSession = "expire_checkout_session"
	opRefund        = "refund"
	opPartialRefund = "partial_refund"
)

// callSeconds is how long each call to Stripe took, retries included, by
// how it ended. A calm lot's hold waits for its Checkout Session before it
// is written, so Stripe's latency is the hold's: an operator sees here
// when Stripe slows the holds down (ok), refuses them (refused) or is away
// (unavailable: answered 503). The buckets reach from a local stand-in's
// sub-millisecond answers to the 20 s a call may take in all.
var callSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "parkgate_stripe_call_seconds",
	Help:    "Calls to Stripe's API (retries included), by operation and outcome (ok, refused, unavailable).",
	Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
}, []string{"op", "outcome"})

// observe records a call to Stripe that started at start and returned err
// (as classify returns it). Calls refused before they were sent (a missing
// id or key) are not Stripe's and are not observed.
func observe(op string, start time.Time, err error) {
	outcome := "ok"
	switch {
	case errors.Is(err, ErrUnavailable):
		outcome = "unavailable"
	case errors.Is(err, cloud.ErrSessionCompleted):
		// Paid before it could be expired: Stripe answered what was
		// asked, the session is closed to payment either way.
	case err != nil:
		outcome = "refused"
	}
	callSeconds.WithLabelValues(op, outcome).Observe(time.Since(start).Seconds())
}
