package relay

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/internal/mqttstore"
	"github.com/parkgate/parkgate/protocol"
)

// sharedBrokerURL is the Mosquitto that deploy/services.sh runs and other
// tests share: tests use fresh lot ids and client ids on it and never
// restart it (internal/testkit/broker gives a private one for that).
func sharedBrokerURL() string {
	if u := os.Getenv("TEST_MQTT_URL"); u != "" {
		return u
	}
	return "tcp://127.0.0.1:1883"
}

var quiet = slog.New(slog.DiscardHandler)

// fixture is what most tests need: a fresh schema, its store and a
// signing key.
type fixture struct {
	tb   testing.TB
	db   *postgres.DB
	pool *pgxpool.Pool
	key  ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func setup(tb testing.TB) *fixture {
	tb.Helper()
	s := pgtest.New(tb, 20)
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "parkgate relay test signing key")
	key := ed25519.NewKeyFromSeed(seed)
	return &fixture{tb: tb, db: s.DB, pool: s.DB.Pool, key: key, pub: key.Public().(ed25519.PublicKey)}
}

func (f *fixture) exec(sql string, args ...any) {
	f.tb.Helper()
	if _, err := f.pool.Exec(context.Background(), sql, args...); err != nil {
		f.tb.Fatalf("exec %q: %v", sql, err)
	}
}

func (f *fixture) queryInt(sql string, args ...any) int64 {
	f.tb.Helper()
	var n int64
	if err := f.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		f.tb.Fatalf("query %q: %v", sql, err)
	}
	return n
}

func (f *fixture) queryString(sql string, args ...any) string {
	f.tb.Helper()
	var s string
	if err := f.pool.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		f.tb.Fatalf("query %q: %v", sql, err)
	}
	return s
}

// edgeKey signs the test edges' gate events; lot registers it for every
// lot it makes.
var edgeKey = func() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "parkgate relay test edge key")
	return ed25519.NewKeyFromSeed(seed)
}()

// lot inserts a lot with one spot, registers edgeKey for it and returns its
// id.
func (f *fixture) lot() string {
	f.tb.Helper()
	id := uuid.NewString()
	f.exec(`INSERT INTO lots (id, name, latitude, longitude, time_zone, hourly_rate_amount, currency, total_spots)
	        VALUES ($1, 'Test lot', 52.5, 13.4, 'Europe/Berlin', 300, 'eur', 1)`, id)
	f.exec(`INSERT INTO spots (lot_id, label) VALUES ($1, 'A1')`, id)
	if _, err := f.db.RegisterEdgeKey(context.Background(), id, edgeKey.Public().(ed25519.PublicKey)); err != nil {
		f.tb.Fatal(err)
	}
	return id
}

// reservation inserts a reservation of the lot's spot with the given status
// in the i-th two-hour slot from now (so several never overlap).
func (f *fixture) reservation(lot string, status protocol.Status, plate string, i int) string {
	f.tb.Helper()
	id := uuid.NewString()
	start := time.Now().Add(time.Duration(i) * 2 * time.Hour).Truncate(time.Second)
	f.exec(`INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
	        SELECT $1, $2, s.id, $3, $4, $5, $6, now() + interval '10 minutes', 300, 'eur' FROM spots s WHERE s.lot_id = $2`,
		id, lot, plate, start, start.Add(time.Hour), string(status))
	return id
}

func (f *fixture) status(reservation string) protocol.Status {
	f.tb.Helper()
	return protocol.Status(f.queryString(`SELECT status FROM reservations WHERE id = $1`, reservation))
}

// addChanges appends n changes to the lot's log in one transaction, as the
// booking service's functions do: the lot's seq bumped with the rows.
func (f *fixture) addChanges(lot string, n int) {
	f.tb.Helper()
	f.exec(`
WITH l AS (UPDATE lots SET seq = seq + $2 WHERE id = $1 RETURNING seq)
INSERT INTO outbox (lot_id, seq, reservation_id, op, status, plate, starts_at, ends_at)
SELECT $1, l.seq - $2 + g, gen_random_uuid(), 'upsert', 'CONFIRMED', 'AB' || g,
       date_trunc('second', now()), date_trunc('second', now()) + interval '1 hour'
  FROM l, generate_series(1, $2::int) g`, lot, n)
}

func (f *fixture) unpublished(lot string) int64 {
	f.tb.Helper()
	return f.queryInt(`SELECT count(*) FROM outbox WHERE lot_id = $1 AND published_at IS NULL`, lot)
}

// eventually polls cond until it holds or d passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func uniqueID(prefix string) string {
	return prefix + "-" + uuid.NewString()[:13]
}

// connectMQTT connects a test client; handler, when set, is the default
// publish handler (messages queued for a persistent session arrive before
// any Subscribe returns).
func connectMQTT(tb testing.TB, url, clientID string, clean bool, handler mqtt.MessageHandler) mqtt.Client {
	tb.Helper()
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetCleanSession(clean).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond).
		SetProtocolVersion(4).
		SetStore(mqttstore.Copying{Store: mqtt.NewMemoryStore()}) // paho#703, as the relay does
	if handler != nil {
		opts.SetDefaultPublishHandler(handler)
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connect %s to %s: %v", clientID, url, tok.Error())
	}
	tb.Cleanup(func() { c.Disconnect(100) })
	return c
}

// dropSession removes a persistent session from the broker, so tests leave
// no queue behind on the shared broker.
func dropSession(url, clientID string) {
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		c.Disconnect(50)
	}
}

// subscriber records the reservation changes it receives, per lot, in
// arrival order, after checking each signature.
type subscriber struct {
	tb  testing.TB
	pub ed25519.PublicKey

	mu      sync.Mutex
	seqs    map[string][]int64
	arrived map[string]time.Time // by reservation id, first arrival
	bad     []string
	changed chan struct{} // closed and replaced at every arrival
}

func newSubscriber(tb testing.TB, url string, pub ed25519.PublicKey, clean bool, lots ...string) (*subscriber, mqtt.Client) {
	tb.Helper()
	s := &subscriber{tb: tb, pub: pub, seqs: map[string][]int64{}, arrived: map[string]time.Time{},
		changed: make(chan struct{})}
	id := uniqueID("sub")
	c := connectMQTT(tb, url, id, clean, s.handle)
	if !clean {
		tb.Cleanup(func() { dropSession(url, id) })
	}
	for _, lot := range lots {
		tok := c.Subscribe(protocol.ReservationsTopic(lot), 1, nil)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			tb.Fatalf("subscribe: %v", tok.Error())
		}
	}
	return s, c
}

func (s *subscriber) handle(_ mqtt.Client, m mqtt.Message) {
	now := time.Now()
	var c protocol.ReservationChange
	err := json.Unmarshal(m.Payload(), &c)
	if err == nil {
		err = c.Validate()
	}
	if err == nil {
		err = c.Verify([]ed25519.PublicKey{s.pub})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
	if err != nil {
		s.bad = append(s.bad, fmt.Sprintf("%s: %v", m.Topic(), err))
		return
	}
	if protocol.ReservationsTopic(c.LotID) != m.Topic() {
		s.bad = append(s.bad, fmt.Sprintf("change of lot %s on %s", c.LotID, m.Topic()))
	}
	s.seqs[c.LotID] = append(s.seqs[c.LotID], c.Seq)
	if _, ok := s.arrived[c.Reservation.ID]; !ok {
		s.arrived[c.Reservation.ID] = now
	}
}

// waitArrived waits until a change of the reservation has arrived.
func (s *subscriber) waitArrived(id string, d time.Duration) {
	s.tb.Helper()
	timeout := time.After(d)
	for {
		s.mu.Lock()
		_, ok := s.arrived[id]
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			s.tb.Fatalf("no change of reservation %s within %s", id, d)
		}
	}
}

// distinct is how many different seqs of the lot arrived.
func (s *subscriber) distinct(lot string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[int64]bool{}
	for _, q := range s.seqs[lot] {
		seen[q] = true
	}
	return len(seen)
}

func (s *subscriber) got(lot string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.seqs[lot]...)
}

func (s *subscriber) errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bad...)
}

// checkOrder checks what an edge relies on: every seq 1..n arrived, each
// for the first time after all smaller ones; anything else is a re-send of
// a seq already seen.
func checkOrder(seqs []int64, n int64) error {
	next := int64(1)
	for i, q := range seqs {
		switch {
		case q == next:
			next++
		case q < next:
			// a re-send: harmless, the edge ignores old seqs
		default:
			return fmt.Errorf("seq %d arrived (position %d) before seq %d", q, i, next)
		}
	}
	if next != n+1 {
		return fmt.Errorf("got seqs up to %d of %d", next-1, n)
	}
	return nil
}

func TestCheckOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		seqs []int64
		ok   bool
	}{
		{[]int64{1, 2, 3}, true},
		{[]int64{1, 2, 2, 1, 3}, true},
		{[]int64{1, 3, 2}, false},
		{[]int64{1, 2}, false},
		{[]int64{2, 1, 3}, false},
	}
	for _, tt := range tests {
		if err := checkOrder(tt.seqs, 3); (err == nil) != tt.ok {
			t.Errorf("checkOrder(%v) = %v, want ok %v", tt.seqs, err, tt.ok)
		}
	}
}

// startRelay runs a relay until the test ends or the returned stop is called.
func startRelay(tb testing.TB, f *fixture, url string, opts Options) (stop func()) {
	tb.Helper()
	_, stop = runRelay(tb, f, url, opts)
	return stop
}

// runRelay is startRelay that also returns the relay.
func runRelay(tb testing.TB, f *fixture, url string, opts Options) (r *Relay, stop func()) {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	r, err := New(f.db, MQTTConfig{Brokers: []string{url}, ClientID: uniqueID("relay")}, f.key, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("relay run: %v", err)
		}
	})
	tb.Cleanup(stop)
	return r, stop
}
