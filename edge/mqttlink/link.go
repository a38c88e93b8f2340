package mqttlink

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

var _ edge.Link = (*Link)(nil)

// Store is what the link needs of the agent's store.
type Store interface {
	edge.SyncStore
	edge.Outbox
}

// Config configures a Link. Brokers, LotID, Gates and Keys are required.
type Config struct {
	Brokers  []string // tcp://host:port; tried in order on every (re)connect
	LotID    string
	ClientID string // "parkedge-{lot}" when empty; fixed, so the broker keeps the session
	// Username and Password authenticate to the broker; the username is the
	// lot id when a password is set and Username is empty, as the broker's
	// per-lot ACL expects; a further gate's status connection logs in as
	// Username/gates/{gate} with the same password (see status.go).
	Username string
	Password string
	Gates    []string
	Keys     []ed25519.PublicKey

	CloudURL   string       // catch-up and key registration are off when empty
	Token      string       // bearer token of the edge endpoints (catch-up, key registration)
	HTTPClient *http.Client // go-retryablehttp's StandardClient when nil
	// PublicKey is the key the store signs gate events with. When it and
	// CloudURL are set, the link registers it with the cloud and publishes
	// no gate event before the cloud has accepted it (or the store, a
	// KeyMemory, remembers it did).
	PublicKey ed25519.PublicKey
	// CatchUpInterval is how often the link catches up over HTTP while the
	// broker is unreachable (10s): a booking confirmed during a broker-only
	// outage reaches the gate that way.
	CatchUpInterval time.Duration

	// StatusEvery is the least time between republishing the gates'
	// statuses after changes were applied (2s): each carries the applied
	// seq, which the cloud shows operators as how far the edge has synced.
	StatusEvery time.Duration

	GapWait        time.Duration // how long a gap may wait for redelivery before catch-up; 500ms
	Window         int           // gate events published before waiting for acknowledgements; 256
	KeepAlive      time.Duration // 10s
	ReconnectMax   time.Duration // longest wait between reconnect attempts; 5s
	PublishTimeout time.Duration // how long a window waits for acknowledgements; 10s

	Logger     *slog.Logger
	Registerer prometheus.Registerer // metrics are registered here when set
	// OnApplied is called after each applied batch with the new last
	// sequence number, from the applier goroutine; it must not block.
	OnApplied func(seq int64)
	// OnCommand is called, after the batch that carries it is applied,
	// with each command the stream sends (a remote open), from the applier
	// goroutine; it must not block. Applied changes are never applied
	// again, so each command reaches it at most once.
	OnCommand func(c protocol.ReservationChange)
}

// Stats are the link's counters.
type Stats struct {
	Connections   uint64 // successful connects
	Applied       uint64 // changes applied
	Duplicates    uint64 // changes at or below the applied seq, or already buffered
	BadSignatures uint64 // changes refused because no key verified them
	Invalid       uint64 // messages that were not a valid change for this lot
	Skipped       uint64 // verified changes of a kind or op this build cannot use: applied as no-ops
	Published     uint64 // gate events acknowledged by the broker and removed from the outbox
	CatchUps      uint64 // successful catch-up runs
	CatchUpErrors uint64
	KeyRegistered bool // the cloud accepted the signing key (or the store remembers it did)
}

// Link is a running connection to the broker and the cloud.
type Link struct {
	cfg      Config
	store    Store
	log      *slog.Logger
	http     *http.Client
	client   mqtt.Client
	pstore   *resumeCountingStore
	status   []*statusConn
	resTopic string

	attempts atomic.Uint64 // connection attempts, counted before each one
	applied  atomic.Int64
	gapOpen  atomic.Bool
	startup  atomic.Bool // a catch-up has succeeded since Start

	keyRegistered atomic.Bool
	registerErrs  atomic.Uint64

	connections, appliedN, duplicates, badSigs, invalid, skipped, published, catchUps, catchUpErrs atomic.Uint64

	live     chan protocol.ReservationChange
	caught   chan []protocol.ReservationChange
	catchReq chan struct{}
	wake     chan struct{}

	// statusDue is signalled when the applied seq moved; statusMu and
	// closing keep the status reporter from publishing "online" after Close
	// published "offline".
	statusDue chan struct{}
	statusMu  sync.Mutex
	closing   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New checks cfg and builds the link; Start connects.
func New(cfg Config, store Store) (*Link, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, fmt.Errorf("mqttlink: no broker")
	case cfg.LotID == "":
		return nil, fmt.Errorf("mqttlink: no lot id")
	case len(cfg.Gates) == 0:
		return nil, fmt.Errorf("mqttlink: no gates")
	case len(cfg.Keys) == 0:
		return nil, fmt.Errorf("mqttlink: no cloud public keys")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "parkedge-" + cfg.LotID
	}
	if cfg.Username == "" && cfg.Password != "" {
		cfg.Username = cfg.LotID
	}
	if cfg.GapWait <= 0 {
		cfg.GapWait = 500 * time.Millisecond
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = 5 * time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if cfg.CatchUpInterval <= 0 {
		cfg.CatchUpInterval = 10 * time.Second
	}
	if cfg.StatusEvery <= 0 {
		cfg.StatusEvery = 2 * time.Second
	}
	l := &Link{
		cfg:      cfg,
		store:    store,
		log:      cfg.Logger,
		http:     cfg.HTTPClient,
		pstore:   newResumeCountingStore(),
		resTopic: protocol.ReservationsTopic(cfg.LotID),
		live:     make(chan protocol.ReservationChange, 10_000),
		caught:   make(chan []protocol.ReservationChange, 2),
		catchReq: make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),

		statusDue: make(chan struct{}, 1),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.http == nil {
		rc := retryablehttp.NewClient()
		rc.RetryMax = 3
		rc.RetryWaitMin = 200 * time.Millisecond
		rc.RetryWaitMax = 3 * time.Second
		rc.HTTPClient.Timeout = 15 * time.Second
		rc.Logger = l.log // slog.Logger is a retryablehttp.LeveledLogger
		l.http = rc.StandardClient()
	}
	seq, err := store.LastSeq()
	if err != nil {
		return nil, fmt.Errorf("mqttlink: %w", err)
	}
	l.applied.Store(seq)
	if km, ok := store.(KeyMemory); ok && l.registering() && km.KeyRegistered(cfg.PublicKey) {
		l.keyRegistered.Store(true)
	}

	l.client = mqtt.NewClient(l.options())
	for _, g := range cfg.Gates[1:] {
		l.status = append(l.status, newStatusConn(l, g))
	}
	if cfg.Registerer != nil {
		if err := l.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Start connects in the background (the agent decides without a broker)
// and starts applying, catching up and draining the outbox.
func (l *Link) Start(ctx context.Context) error {
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.wg.Add(4)
	go func() { defer l.wg.Done(); l.statusReporter() }()
	go func() { defer l.wg.Done(); l.applier() }()
	go func() { defer l.wg.Done(); l.catchUpLoop() }()
	go func() { defer l.wg.Done(); l.drainer() }()
	if l.cfg.CloudURL != "" {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.outagePoller() }()
	}
	if l.registering() {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.registerLoop() }()
	}
	l.requestCatchUp()
	l.client.Connect() // with ConnectRetry it keeps trying; the token is not needed
	for _, s := range l.status {
		s.client.Connect()
	}
	return nil
}

// Close marks every gate offline, disconnects gracefully (the session and
// its queued messages stay at the broker) and stops the goroutines.
func (l *Link) Close() error {
	l.once.Do(func() {
		l.statusMu.Lock()
		l.closing = true
		l.statusMu.Unlock()
		for _, s := range l.status {
			s.publish(protocol.StateOffline)
		}
		if l.client.IsConnectionOpen() && l.pstore.ready() {
			t := l.client.Publish(protocol.GateStatusTopic(l.cfg.LotID, l.cfg.Gates[0]), 1, true,
				l.statusPayload(l.cfg.Gates[0], protocol.StateOffline))
			t.WaitTimeout(time.Second)
		}
		if l.cancel != nil {
			l.cancel()
		}
		l.client.Disconnect(250)
		for _, s := range l.status {
			s.client.Disconnect(250)
		}
		l.wg.Wait()
	})
	return nil
}

// Connected implements edge.Link.
func (l *Link) Connected() bool { return l.client.IsConnectionOpen() }

// AppliedSeq implements edge.Link.
func (l *Link) AppliedSeq() int64 { return l.applied.Load() }

// Stats returns the counters.
func (l *Link) Stats() Stats {
	return Stats{
		Connections:   l.connections.Load(),
		Applied:       l.appliedN.Load(),
		Duplicates:    l.duplicates.Load(),
		BadSignatures: l.badSigs.Load(),
		Invalid:       l.invalid.Load(),
		Skipped:       l.skipped.Load(),
		Published:     l.published.Load(),
		CatchUps:      l.catchUps.Load(),
		CatchUpErrors: l.catchUpErrs.Load(),
		KeyRegistered: l.keyRegistered.Load(),
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
