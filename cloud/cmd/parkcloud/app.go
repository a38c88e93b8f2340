package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/alerts"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/bus"
	"github.com/parkgate/parkgate/cloud/bus/kafkabus"
	"github.com/parkgate/parkgate/cloud/bus/pgbus"
	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/relay"
	"github.com/parkgate/parkgate/cloud/stripepay"
	"github.com/parkgate/parkgate/protocol"
)

// Main is the parkcloud program: configuration, then every constructor in
// one place, then the run and an orderly shutdown.
type Main struct {
	Config
	Log *slog.Logger

	db      *postgres.DB
	closers []func()
}

// NewMain returns a Main logging JSON to stderr.
func NewMain() *Main {
	return &Main{Log: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
}

// Migrate applies the migrations, on a connection of its own, and
// returns. A database newer than this binary is left as it is and is no
// error: a rollout under way, or a rollback, serves on the newer schema.
func (m *Main) Migrate(ctx context.Context) error {
	db, err := postgres.Open(ctx, m.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	vs, err := db.Migrate(ctx)
	if errors.Is(err, postgres.ErrSchemaNewer) {
		m.Log.Warn("nothing migrated", "err", err)
		return nil
	} else if err != nil {
		return err
	}
	m.Log.Info("migrated", "applied", vs)
	return nil
}

// Close releases what Run opened, in reverse order.
func (m *Main) Close() {
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
	m.closers = nil
}

func (m *Main) signingKey() (ed25519.PrivateKey, error) {
	if m.SigningKey != "" {
		return protocol.ParseSigningKey(m.SigningKey)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	m.Log.Warn("no PARKGATE_SIGNING_KEY: signing with a throwaway key; edges will not trust it after a restart",
		"public_key", protocol.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	return key, nil
}

// Run serves until ctx ends, then shuts down within a deadline. It only
// wires: every constructor is called here, and every background loop is its
// owner's, started here.
func (m *Main) Run(ctx context.Context) error {
	m.Log.Info("starting parkcloud",
		"http_addr", m.HTTPAddr, "database_url", maskURL(m.DatabaseURL), "database_read_url", maskURL(m.DatabaseReadURL), "redis_url", maskURL(m.RedisURL),
		"mqtt_url", maskURLs(m.MQTTURLs), "stripe_api_base", m.StripeAPIBase, "stripe_secret_key", mask(m.StripeSecretKey),
		"stripe_webhook_secret", mask(m.StripeWebhookSecret), "admin_token", mask(m.AdminToken),
		"hold_ttl", m.HoldTTL.String(), "bus", m.Bus, "replica", m.ReplicaID)

	db, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	key, err := m.signingKey()
	if err != nil {
		return err
	}
	payments, err := m.payments()
	if err != nil {
		return err
	}
	g, err := m.guard()
	if err != nil {
		return err
	}
	svc := booking.New(db, payments, nil, m.Log, m.HoldTTL)
	if g != nil {
		svc.Guard = g
	}
	// Events the bus recorded before it carried decoded ones.
	svc.DecodeLegacy = stripepay.DecodeEvent
	svc.Permits = db
	pub, cons, purgeBus, err := m.bus(db)
	if err != nil {
		return err
	}
	secrets := split(m.StripeWebhookSecret)
	webhooks := &booking.Webhooks{Verify: stripepay.Verifier{Secrets: secrets}.Verify, Bus: pub}

	api := &httpapi.Server{Booking: svc, DB: db, EdgeTokens: db, EdgeKeys: db, Feed: relay.NewFeed(db, key), Alerts: db, Edges: db, Log: m.Log, AdminToken: m.AdminToken,
		LotInFlight: m.LotInFlight, AccessCodes: booking.AccessCodes(key)}
	if len(secrets) > 0 {
		api.Webhooks = webhooks
	}
	if err := m.readReplica(ctx, api); err != nil {
		return err
	}
	if g != nil {
		api.Limiter = g
		api.Cache = g
		api.Checks = append(api.Checks, httpapi.Check{Name: "redis", Check: func(context.Context) error {
			if !g.Healthy() {
				return errors.New("unreachable: limits are per replica, caches bypassed")
			}
			return nil
		}})
	}

	srv := &http.Server{
		Addr:              m.HTTPAddr,
		Handler:           api.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	goBG := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(bg); err != nil && bg.Err() == nil {
				m.Log.Error("background task stopped", "task", name, "err", err)
			}
		}()
	}
	if brokers := split(m.MQTTURLs); len(brokers) > 0 {
		rl, err := relay.New(db, mqttClient(brokers, "parkcloud-relay-"+m.ReplicaID),
			key, relay.Options{Owner: m.ReplicaID, Logger: m.Log})
		if err != nil {
			stopBG()
			return err
		}
		goBG("relay", rl.Run)
		svc.Changed = rl.Wake
		in, err := relay.NewIngest(db, mqttClient(brokers, "parkcloud-ingest-"+m.ReplicaID),
			relay.IngestOptions{Logger: m.Log, Unshared: !m.SharedIngest,
				OnChange: func(ctx context.Context, lotID string) {
					if g != nil {
						g.InvalidateLot(ctx, lotID)
					}
					rl.Wake(lotID)
				}})
		if err != nil {
			stopBG()
			wg.Wait()
			return err
		}
		goBG("ingest", in.Run)
	}
	goBG("workers", func(ctx context.Context) error { svc.RunWorkers(ctx, m.WorkerEvery); return nil })
	goBG("alerts", alerts.New(db, alerts.Options{Workers: m.AlertWorkers, Poll: m.AlertPoll, Logger: m.Log}).Run)
	goBG("payment-events", func(ctx context.Context) error { return cons.Run(ctx, svc.HandleMessage) })
	if purgeBus != nil {
		goBG("purge-payment-events", func(ctx context.Context) error { purgeBus(ctx); return nil })
	}
	goBG("pprof", func(ctx context.Context) error { m.servePprof(ctx); return nil })
	if g != nil {
		goBG("guard", func(ctx context.Context) error { g.Run(ctx); return nil })
	}
	return m.serve(ctx, srv, func() {
		stopBG()
		wg.Wait()
	})
}

// openStore applies the migrations and opens the service's pool. The
// migrations run first, on a connection of their own: the pool warms each
// connection as it makes it, and re-creating the functions after would
// have every one compile them again.
func (m *Main) openStore(ctx context.Context) (*postgres.DB, error) {
	if err := m.Migrate(ctx); err != nil {
		return nil, err
	}
	db, err := postgres.OpenService(ctx, m.DatabaseURL, int32(m.DBMaxConns))
	if err != nil {
		return nil, err
	}
	db.LimitSearches(m.SearchConcurrency)
	m.db = db
	m.closers = append(m.closers, db.Close)
	return db, nil
}

// readReplica points the API's searches at DATABASE_READ_URL when it is
// set, with a readiness check that reports it degraded (not down: searches
// fall back to the primary while it is away).
func (m *Main) readReplica(ctx context.Context, api *httpapi.Server) error {
	if m.DatabaseReadURL == "" {
		return nil
	}
	rdb, err := postgres.OpenReplica(ctx, m.DatabaseReadURL, int32(m.DBMaxConns))
	if err != nil {
		return err
	}
	rdb.LimitSearches(m.SearchConcurrency) // the replica's cores now do the searching
	m.closers = append(m.closers, rdb.Close)
	api.Reads = rdb
	api.Checks = append(api.Checks, httpapi.Check{Name: "database_read", Check: rdb.Ping})
	return nil
}

// payments returns the Stripe client, or nil when payments are off.
func (m *Main) payments() (cloud.Payments, error) {
	if m.StripeSecretKey == "" {
		m.Log.Warn("no STRIPE_SECRET_KEY: payments disabled; holds can never be confirmed")
		return nil, nil
	}
	sp, err := stripepay.New(stripepay.Config{SecretKey: m.StripeSecretKey, APIBase: m.StripeAPIBase,
		SuccessURL: m.CheckoutSuccessURL, CancelURL: m.CheckoutCancelURL, Logger: m.Log})
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// guard returns the Redis hot-lot guard, or nil without Redis.
func (m *Main) guard() (*guard.Guard, error) {
	if m.RedisURL == "" {
		return nil, nil
	}
	rdb, err := guard.NewUniversalClient(m.RedisURL)
	if err != nil {
		return nil, err
	}
	m.closers = append(m.closers, func() { _ = rdb.Close() })
	opts := guard.Options{Namespace: m.RedisNamespace}
	if opts.LotRate, err = guard.ParseLimit(m.LotRate); err != nil {
		return nil, fmt.Errorf("PARKGATE_LOT_RATE: %w", err)
	}
	if opts.ClientRate, err = guard.ParseLimit(m.ClientRate); err != nil {
		return nil, fmt.Errorf("PARKGATE_CLIENT_RATE: %w", err)
	}
	if m.LotRates != "" {
		if opts.LotRates, err = guard.ParseLimits(m.LotRates); err != nil {
			return nil, fmt.Errorf("PARKGATE_LOT_RATES: %w", err)
		}
	}
	return guard.New(rdb, opts), nil
}

// bus returns the payment-event bus, and for the Postgres one its purge
// loop (nil for Kafka, which expires events itself).
func (m *Main) bus(db *postgres.DB) (bus.Publisher, bus.Consumer, func(context.Context), error) {
	if m.Bus == "kafka" {
		kb, err := kafkabus.New(kafkabus.Config{Brokers: split(m.KafkaBrokers), Topic: m.KafkaTopic, Group: "parkcloud", Logger: m.Log})
		if err != nil {
			return nil, nil, nil, err
		}
		m.closers = append(m.closers, kb.Close)
		return kb, kb, nil, nil
	}
	pb := pgbus.New(db.Pool, pgbus.Options{Workers: m.BusWorkers, Logger: m.Log})
	// Kept longer than Stripe's three days of retries: a purged id no
	// longer counts as a duplicate.
	purge := func(ctx context.Context) { pb.RunPurge(ctx, 6*time.Hour, 30*24*time.Hour) }
	return pb, pb, purge, nil
}

// serve runs srv until ctx ends or it fails, then shuts it down within a
// deadline and stops the background tasks with stop.
func (m *Main) serve(ctx context.Context, srv *http.Server, stop func()) error {
	errc := make(chan error, 1)
	go func() {
		m.Log.Info("listening", "addr", m.HTTPAddr)
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
		close(errc)
	}()
	select {
	case err := <-errc:
		stop()
		return err
	case <-ctx.Done():
	}
	m.Log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-shutdownCtx.Done():
		m.Log.Warn("background tasks did not stop in time")
	}
	return err
}
