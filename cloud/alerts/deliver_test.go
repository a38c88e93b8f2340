package alerts_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/alerts"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/prometheus/client_golang/prometheus"
)

const waitFor = 30 * time.Second // generous: the machine is shared

type fixture struct {
	t  *testing.T
	db *postgres.DB
}

func setup(t *testing.T) *fixture {
	t.Helper()
	return &fixture{t: t, db: pgtest.New(t, 8).DB}
}

// endpoint registers a receiver for every alert type.
func (f *fixture) endpoint(url string) cloud.WebhookEndpoint {
	f.t.Helper()
	e, err := f.db.CreateWebhookEndpoint(context.Background(), cloud.WebhookEndpoint{
		URL: url, Events: cloud.AlertTypes, Secret: "whsec_" + f.t.Name()})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *fixture) raise(typ string) string {
	f.t.Helper()
	id, err := f.db.Alert(context.Background(), typ, map[string]any{"lot_id": "l1", "gate_id": "entry-1"})
	if err != nil || id == "" {
		f.t.Fatalf("raise %s: %q, %v", typ, id, err)
	}
	return id
}

// run starts a deliverer and returns its stop, which waits for it.
func (f *fixture) run(opts alerts.Options) (stop func()) {
	if opts.Poll == 0 {
		opts.Poll = 20 * time.Millisecond
	}
	if opts.Backoff == nil {
		opts.Backoff = func(int) time.Duration { return 50 * time.Millisecond }
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = alerts.New(f.db, opts).Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	f.t.Cleanup(stop)
	return stop
}

func (f *fixture) pending() int64 {
	f.t.Helper()
	n, err := f.db.PendingAlerts(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// received is one delivery as the receiver saw it.
type received struct {
	ID, Type    string
	ContentType string
	Verified    error
	Status      int
}

// receiver answers each delivery with answer(n) (n counts from 1) and
// records what it got, verifying the signature with secret.
type receiver struct {
	srv    *httptest.Server
	secret string
	answer func(n int) int
	mu     sync.Mutex
	got    []received
}

func newReceiver(t *testing.T, secret string, answer func(n int) int) *receiver {
	r := &receiver{secret: secret, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var p struct{ ID, Type string }
	_ = json.Unmarshal(body, &p)
	r.mu.Lock()
	defer r.mu.Unlock()
	status := r.answer(len(r.got) + 1)
	r.got = append(r.got, received{ID: p.ID, Type: p.Type, ContentType: req.Header.Get("Content-Type"),
		Verified: alerts.Verify(body, req.Header.Get(alerts.SignatureHeader), r.secret, 0, time.Now()), Status: status})
	w.WriteHeader(status)
}

func (r *receiver) deliveries() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func always(status int) func(int) int { return func(int) int { return status } }

func counter(outcome string) float64 {
	mfs, _ := prometheus.DefaultGatherer.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "parkgate_alert_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestDeliverAfterA500: a receiver that answers 500 then 200 gets the
// event exactly twice, with the same id, signed, as JSON.
func TestDeliverAfterA500(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rcv := newReceiver(t, "whsec_"+t.Name(), func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	f.endpoint(rcv.srv.URL)
	id := f.raise(cloud.AlertEdgeOffline)
	retries, delivered := counter("retry"), counter("delivered")
	f.run(alerts.Options{})

	eventually(t, "delivered", func() bool { return f.pending() == 0 })
	time.Sleep(300 * time.Millisecond) // several polls: nothing more may come
	got := rcv.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2: %+v", len(got), got)
	}
	for _, g := range got {
		if g.ID != id || g.Type != cloud.AlertEdgeOffline || g.Verified != nil || g.ContentType != "application/json" {
			t.Errorf("delivery %+v, want id %s, edge.offline, signed, JSON", g, id)
		}
	}
	if counter("retry") < retries+1 || counter("delivered") < delivered+1 {
		t.Errorf("metrics: retry %v→%v, delivered %v→%v", retries, counter("retry"), delivered, counter("delivered"))
	}
}

// TestDeliverWhenReceiverComesBack: a receiver that is down (connection
// refused) and then up gets the event.
func TestDeliverWhenReceiverComesBack(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: nothing listens on addr
	f.endpoint("http://" + addr + "/hook")
	id := f.raise(cloud.AlertPaymentRefunded)
	retries := counter("retry")
	f.run(alerts.Options{})
	eventually(t, "attempts against the dead receiver", func() bool { return counter("retry") >= retries+2 })

	rcv := newReceiver(t, "whsec_"+t.Name(), always(http.StatusNoContent))
	rcv.srv.Close()
	rcv.srv = httptest.NewUnstartedServer(http.HandlerFunc(rcv.serve))
	if rcv.srv.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	rcv.srv.Start()
	eventually(t, "delivered", func() bool { return f.pending() == 0 })
	if got := rcv.deliveries(); len(got) != 1 || got[0].ID != id || got[0].Verified != nil {
		t.Errorf("deliveries %+v, want one of %s", got, id)
	}
}

// TestDeliverSurvivesRestart: a deliverer stopped mid-way (one that
// claimed the delivery and died, and one stopped while the receiver was
// failing) leaves the row in Postgres; the next one delivers it.
func TestDeliverSurvivesRestart(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	var up sync.Mutex
	failing := true
	rcv := newReceiver(t, "whsec_"+t.Name(), func(int) int {
		up.Lock()
		defer up.Unlock()
		if failing {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	f.endpoint(rcv.srv.URL)
	died := f.raise(cloud.AlertEdgeOffline)
	// A replica claims it and dies before posting: only the lease is left.
	if c, err := f.db.ClaimAlertDeliveries(ctx, 10, 500*time.Millisecond); err != nil || len(c) != 1 || c[0].EventID != died {
		t.Fatalf("claim: %+v, %v", c, err)
	}
	stopped := f.raise(cloud.AlertReservationCancelled)

	// A short backoff: what is tested is that the rows outlive the
	// deliverer, not the default waits, which a loaded machine stretches.
	quick := alerts.Options{Backoff: func(int) time.Duration { return 300 * time.Millisecond }}
	stop := f.run(quick)
	eventually(t, "an attempt of each", func() bool { return len(rcv.deliveries()) >= 2 })
	stop()
	if n := f.pending(); n != 2 {
		t.Fatalf("%d pending after the stop, want 2", n)
	}

	up.Lock()
	failing = false
	up.Unlock()
	f.run(quick) // the next start
	eventually(t, "delivered after the restart", func() bool { return f.pending() == 0 })
	ok := map[string]int{}
	for _, g := range rcv.deliveries() {
		if g.Status == http.StatusOK {
			ok[g.ID]++
		}
	}
	if ok[died] != 1 || ok[stopped] != 1 {
		t.Errorf("successful deliveries %v, want one of %s and of %s", ok, died, stopped)
	}
}

// TestDeletedEndpointGetsNothingMore: deleting an endpoint stops its
// pending retries; another endpoint still gets its copy.
func TestDeletedEndpointGetsNothingMore(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	gone := newReceiver(t, "whsec_"+t.Name(), always(http.StatusInternalServerError))
	kept := newReceiver(t, "whsec_"+t.Name(), always(http.StatusOK))
	e := f.endpoint(gone.srv.URL)
	f.endpoint(kept.srv.URL)
	f.raise(cloud.AlertGateDeniedRepeatedly)
	f.run(alerts.Options{})
	eventually(t, "a failed attempt", func() bool { return len(gone.deliveries()) >= 1 })
	if err := f.db.DeleteWebhookEndpoint(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.db.DeleteWebhookEndpoint(ctx, e.ID); cloud.ErrorCode(err) != cloud.ENotFound {
		t.Errorf("second delete: %v, want not_found", err)
	}
	eventually(t, "nothing pending", func() bool { return f.pending() == 0 })
	n := len(gone.deliveries())
	f.raise(cloud.AlertGateDeniedRepeatedly)
	eventually(t, "the kept endpoint's second event", func() bool { return len(kept.deliveries()) == 2 })
	time.Sleep(300 * time.Millisecond)
	if m := len(gone.deliveries()); m > n+1 { // one attempt may have been in flight at the delete
		t.Errorf("deleted endpoint got %d more deliveries", m-n)
	}
}

// TestGiveUpAfterDeadline: a delivery still failing at its event's
// deadline is marked failed and counted, and not tried again.
func TestGiveUpAfterDeadline(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rcv := newReceiver(t, "whsec_"+t.Name(), always(http.StatusBadGateway))
	f.endpoint(rcv.srv.URL)
	f.raise(cloud.AlertReservationOverstayed)
	failed := counter("failed")
	// Retries 100ms apart within a 3s life: several attempts fit even
	// when a loaded machine makes the first one late.
	f.run(alerts.Options{GiveUpAfter: 3 * time.Second, Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
	eventually(t, "given up", func() bool { return f.pending() == 0 })
	if counter("failed") < failed+1 {
		t.Errorf("failed counter %v → %v", failed, counter("failed"))
	}
	n := len(rcv.deliveries())
	time.Sleep(300 * time.Millisecond)
	if n < 2 || len(rcv.deliveries()) != n {
		t.Errorf("%d attempts then %d: want retries until the deadline, none after", n, len(rcv.deliveries()))
	}
}

// TestReplicasDeliverOnce: deliverers side by side claim different rows,
// so a receiver that always answers 200 gets each event once.
func TestReplicasDeliverOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rcv := newReceiver(t, "whsec_"+t.Name(), always(http.StatusOK))
	f.endpoint(rcv.srv.URL)
	const events = 40
	for range events {
		f.raise(cloud.AlertEdgeOnline)
	}
	for range 3 {
		f.run(alerts.Options{Workers: 2})
	}
	eventually(t, "all delivered", func() bool { return f.pending() == 0 })
	seen := map[string]int{}
	for _, g := range rcv.deliveries() {
		seen[g.ID]++
	}
	if len(seen) != events {
		t.Fatalf("%d events delivered, want %d", len(seen), events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// TestRedirectNotFollowed: a 3xx is no delivery, and the host it points to
// never gets the signed event.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	elsewhere := newReceiver(t, "whsec_"+t.Name(), always(http.StatusOK))
	redirects := 0
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		redirects++
		mu.Unlock()
		http.Redirect(w, r, elsewhere.srv.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	f.endpoint(srv.URL)
	f.raise(cloud.AlertPaymentRefunded)
	f.run(alerts.Options{})
	eventually(t, "retried redirects", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return redirects >= 3
	})
	if n := f.pending(); n != 1 {
		t.Errorf("%d pending, want the redirected delivery still pending", n)
	}
	if got := elsewhere.deliveries(); len(got) != 0 {
		t.Errorf("the redirect target got %d deliveries", len(got))
	}
}
