package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// Options tune a Deliverer; zero values take the defaults.
type Options struct {
	// Workers bounds the posts in flight at once in this replica
	// (default 8): a slow receiver holds one for up to Timeout.
	Workers int
	// Poll is how often the outbox is asked for due deliveries (default 1s).
	Poll time.Duration
	// Timeout bounds one attempt, connection to last byte (default 10s).
	Timeout time.Duration
	// Lease is how long a claimed delivery is held for its attempt and
	// the write of its outcome (default Timeout + 30s): a replica that dies
	// mid-attempt leaves the row due again after it.
	Lease time.Duration
	// GiveUpAfter is how long after its event a delivery is tried
	// (default 72h).
	GiveUpAfter time.Duration
	// Backoff is the wait after the n-th failed attempt (n from 1);
	// default DefaultBackoff.
	Backoff func(n int) time.Duration
	// Retention is how long delivered and given-up alerts are kept, for
	// looking into what an endpoint got (default 7 days); they are purged
	// hourly.
	Retention time.Duration
	// Client posts the deliveries; default one with Timeout that follows
	// no redirects.
	Client *http.Client
	Now    func() time.Time
	Logger *slog.Logger
}

// DefaultBackoff waits 10s, 30s, 2m, 10m, 30m, then every hour after a
// failed attempt, each ±20% at random so that the deliveries of one burst
// that failed together (a receiver down) do not return together.
func DefaultBackoff(n int) time.Duration {
	steps := []time.Duration{10 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}
	d := steps[min(max(n, 1), len(steps))-1]
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// NoRedirects is the deliverer's redirect policy: a 3xx is an answer, not
// a 2xx, so it is retried. Following one would let an endpoint send signed
// alerts to a host the operator never registered.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Deliverer posts alert deliveries from the outbox.
type Deliverer struct {
	out  cloud.AlertOutbox
	opts Options
	log  *slog.Logger
	sem  chan struct{}
	wake chan struct{} // a worker came free: claim again without waiting for the poll
	wg   sync.WaitGroup
}

// New returns a Deliverer draining out.
func New(out cloud.AlertOutbox, opts Options) *Deliverer {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Lease <= 0 {
		opts.Lease = opts.Timeout + 30*time.Second
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = 72 * time.Hour
	}
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: opts.Timeout, CheckRedirect: NoRedirects}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Deliverer{out: out, opts: opts, log: opts.Logger, sem: make(chan struct{}, opts.Workers), wake: make(chan struct{}, 1)}
}

// Run delivers until ctx ends, then lets the attempts in flight finish
// (each bounded by Timeout) and record their outcome. It returns nil.
func (d *Deliverer) Run(ctx context.Context) error {
	defer d.wg.Wait()
	tick := time.NewTicker(d.opts.Poll)
	defer tick.Stop()
	var counted, purged time.Time
	for {
		if time.Since(counted) > 15*time.Second {
			if n, err := d.out.PendingAlerts(ctx); err == nil {
				pending.Set(float64(n))
				counted = time.Now()
			}
		}
		if time.Since(purged) > time.Hour {
			// Every replica purges; the deletes are idempotent and cheap.
			if _, err := d.out.PurgeAlerts(ctx, max(d.opts.Retention, d.opts.GiveUpAfter)); err == nil {
				purged = time.Now()
			} else if ctx.Err() == nil {
				d.log.Warn("alerts: purge", "err", err)
			}
		}
		for d.claim(ctx) {
			// A full batch: there may be more due right now.
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.wake:
		}
	}
}

// claim takes as many due deliveries as there are free workers and starts
// them; it reports whether it filled every free worker.
func (d *Deliverer) claim(ctx context.Context) bool {
	free := 0
fill:
	for free < cap(d.sem) {
		select {
		case d.sem <- struct{}{}:
			free++
		default:
			break fill
		}
	}
	if free == 0 || ctx.Err() != nil {
		for range free {
			<-d.sem
		}
		return false
	}
	batch, err := d.out.ClaimAlertDeliveries(ctx, free, d.opts.Lease)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("alerts: claim deliveries", "err", err)
		}
		batch = nil
	}
	for _, dl := range batch {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() {
				<-d.sem
				select {
				case d.wake <- struct{}{}:
				default:
				}
			}()
			// Not ctx: an attempt under way at shutdown finishes and
			// records its outcome rather than waiting out its lease.
			d.deliver(context.WithoutCancel(ctx), dl)
		}()
	}
	for range free - len(batch) {
		<-d.sem
	}
	full := len(batch) == free
	if !full {
		// Nothing more is due: wait for the poll, not for a worker.
		select {
		case <-d.wake:
		default:
		}
	}
	return full
}

// payload is what a receiver gets.
type payload struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Created time.Time       `json:"created"`
	Data    json.RawMessage `json:"data"`
}

// Body returns the JSON body of a delivery: the same bytes on every attempt.
func Body(dl cloud.AlertDelivery) ([]byte, error) {
	b, err := json.Marshal(payload{ID: dl.EventID, Type: dl.Type, Created: dl.Created.UTC(), Data: dl.Data})
	if err != nil {
		return nil, fmt.Errorf("alerts: encode event %s: %w", dl.EventID, err)
	}
	return b, nil
}

func (d *Deliverer) deliver(ctx context.Context, dl cloud.AlertDelivery) {
	err := d.post(ctx, dl)
	eid, wid := dl.EventID, dl.Endpoint.ID
	if err == nil {
		l, err := d.out.AlertDelivered(ctx, eid, wid)
		if err != nil {
			// The receiver has it; the lease runs out and it is sent again,
			// which receivers dedupe by id.
			d.log.Warn("alerts: record delivery", "event", eid, "endpoint", wid, "err", err)
			return
		}
		deliveries.WithLabelValues(outcomeDelivered).Inc()
		lag.Observe(l.Seconds())
		return
	}
	reason := err.Error()
	if len(reason) > 500 {
		reason = reason[:500]
	}
	now := d.opts.Now()
	deadline := dl.Created.Add(d.opts.GiveUpAfter)
	if !now.Before(deadline) {
		if err := d.out.AlertFailed(ctx, eid, wid, reason); err != nil {
			d.log.Warn("alerts: record give-up", "event", eid, "endpoint", wid, "err", err)
			return
		}
		deliveries.WithLabelValues(outcomeFailed).Inc()
		d.log.Error("alerts: delivery given up", "event", eid, "type", dl.Type, "url", dl.Endpoint.URL,
			"attempts", dl.Attempts+1, "err", reason)
		return
	}
	next := now.Add(d.opts.Backoff(dl.Attempts + 1))
	if next.After(deadline) {
		next = deadline // one last attempt at the deadline
	}
	if err := d.out.AlertRetry(ctx, eid, wid, next, reason); err != nil {
		d.log.Warn("alerts: record retry", "event", eid, "endpoint", wid, "err", err)
		return
	}
	deliveries.WithLabelValues(outcomeRetry).Inc()
	d.log.Info("alerts: delivery failed, will retry", "event", eid, "url", dl.Endpoint.URL,
		"attempt", dl.Attempts+1, "next", next.UTC(), "err", reason)
}

// errStatus is a receiver's answer other than 2xx.
var errStatus = errors.New("receiver answered")

func (d *Deliverer) post(ctx context.Context, dl cloud.AlertDelivery) error {
	body, err := Body(dl)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.Endpoint.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "parkgate-alerts/1")
	req.Header.Set(SignatureHeader, Sign(dl.Endpoint.Secret, body, d.opts.Now()))
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return err
	}
	// Read a little, so the connection can be reused, but never a
	// receiver's whole answer.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w %d", errStatus, resp.StatusCode)
	}
	return nil
}
