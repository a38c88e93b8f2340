package guard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
)

// The booking path, in the order the guard expects its calls. hold stands
// for the Postgres transaction that makes the hold and records the
// idempotent response.
func Example() {
	rdb, err := guard.NewClient("redis://127.0.0.1:6379/0")
	if err != nil {
		panic(err)
	}
	limits, err := guard.ParseLimits("lot-stadium=200/400")
	if err != nil {
		panic(err)
	}
	g := guard.New(rdb, guard.Options{LotRates: limits, Replicas: 3})
	go g.Run(context.Background()) // health, metrics, cache recovery

	hold := func(ctx context.Context) (status int, body []byte, err error) { return 201, []byte(`{}`), nil }

	book := func(w http.ResponseWriter, r *http.Request, lotID, idemKey string, start, end time.Time) {
		ctx := r.Context()
		if ok, retry := g.AllowLot(ctx, lotID); !ok {
			w.Header().Set("Retry-After", fmt.Sprint(int(retry.Seconds())+1))
			w.WriteHeader(http.StatusTooManyRequests) // and the API's error body
			return
		}
		if resp, ok := g.LoadResponse(ctx, idemKey); ok { // and compare resp.RequestHash
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(resp.Status)
			_, _ = w.Write(resp.Body)
			return
		}
		release, err := g.Lock(ctx, lotID, start, end)
		if errors.Is(err, guard.ErrBusy) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		} else if err != nil {
			return // the client went away
		}
		status, body, err := hold(ctx)
		release()
		if err != nil {
			return // the API's error mapping
		}
		g.InvalidateLot(ctx, lotID) // after the commit
		g.SaveResponse(ctx, idemKey, guard.StoredResponse{Status: status, Body: body})
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}

	search := func(ctx context.Context, lotID string, start, end time.Time) (available, total int) {
		a, t, v, ok := g.Availability(ctx, lotID, start, end)
		if ok {
			return a, t
		}
		available, total = 3, 10 // counted in Postgres, after Availability read v
		g.StoreAvailability(ctx, lotID, start, end, v, available, total)
		return available, total
	}
	_, _ = book, search
}
