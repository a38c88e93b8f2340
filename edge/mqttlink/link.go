package mqttlink

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
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
	// per-lot ACL expects.
	Username string
	Password string
	Gates    []string
	Keys     []ed25519.PublicKey

	CloudURL   string       // catch-up is off when empty
	Token      string       // bearer token of the catch-up endpoint
	HTTPClient *http.Client // go-retryablehttp's StandardClient when nil

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
}

// Stats are the link's counters.
type Stats struct {
	Connections   uint64 // successful connects
	Applied       uint64 // changes applied
	Duplicates    uint64 // changes at or below the applied seq, or already buffered
	BadSignatures uint64 // changes refused because no key verified them
	Invalid       uint64 // messages that were not a valid change for this lot
	Published     uint64 // gate events acknowledged by the broker and removed from the outbox
	CatchUps      uint64 // successful catch-up runs
	CatchUpErrors uint64
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

	connections, appliedN, duplicates, badSigs, invalid, published, catchUps, catchUpErrs atomic.Uint64

	live     chan protocol.ReservationChange
	caught   chan []protocol.ReservationChange
	catchReq chan struct{}
	wake     chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// maxPending bounds the reorder buffer; beyond it changes are dropped and
// fetched again by catch-up.
const maxPending = 100_000

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

func (l *Link) options() *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	for _, b := range l.cfg.Brokers {
		o.AddBroker(b)
	}
	o.SetClientID(l.cfg.ClientID).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(l.cfg.ReconnectMax).
		SetKeepAlive(l.cfg.KeepAlive).
		SetPingTimeout(5*time.Second).
		SetConnectTimeout(5*time.Second).
		SetWriteTimeout(5*time.Second).
		SetOrderMatters(true).
		SetStore(l.pstore).
		// Without a default handler paho acknowledges and drops what the
		// broker queued for the session before Subscribe runs again.
		SetDefaultPublishHandler(l.onMessage).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(l.onLost).
		SetConnectionAttemptHandler(func(_ *url.URL, tc *tls.Config) *tls.Config {
			// Called synchronously before every attempt, so it is counted
			// before paho can resume (and complete tokens) on it.
			l.attempts.Add(1)
			l.pstore.attempt()
			return tc
		}).
		SetBinaryWill(protocol.GateStatusTopic(l.cfg.LotID, l.cfg.Gates[0]), l.statusPayload(l.cfg.Gates[0], protocol.StateOffline), 1, true)
	if l.cfg.Username != "" {
		o.SetUsername(l.cfg.Username).SetPassword(l.cfg.Password)
	}
	return o
}

// Start connects in the background (the agent decides without a broker)
// and starts applying, catching up and draining the outbox.
func (l *Link) Start(ctx context.Context) error {
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.wg.Add(3)
	go func() { defer l.wg.Done(); l.applier() }()
	go func() { defer l.wg.Done(); l.catchUpLoop() }()
	go func() { defer l.wg.Done(); l.drainer() }()
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
		Published:     l.published.Load(),
		CatchUps:      l.catchUps.Load(),
		CatchUpErrors: l.catchUpErrs.Load(),
	}
}

func (l *Link) onConnect(c mqtt.Client) {
	l.connections.Add(1)
	l.log.Info("broker connected", "client_id", l.cfg.ClientID)
	// paho calls this before it resumes the session; what is sent before
	// the resume has read its store would be resent and raced on by it.
	if !l.pstore.waitResumed(10 * time.Second) {
		return // the connection went away before resuming; the next one calls again
	}
	// The session normally still holds the subscription; subscribing again
	// covers a session the broker expired or lost.
	if t := c.Subscribe(l.resTopic, 1, nil); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		l.log.Error("subscribe failed", "topic", l.resTopic, "err", t.Error())
	}
	c.Publish(protocol.GateStatusTopic(l.cfg.LotID, l.cfg.Gates[0]), 1, true, l.statusPayload(l.cfg.Gates[0], protocol.StateOnline))
	for _, s := range l.status {
		s.refresh()
	}
	// A session the broker lost leaves a hole no later message reveals
	// until the next change: ask the cloud.
	l.requestCatchUp()
	signal(l.wake)
}

func (l *Link) onLost(_ mqtt.Client, err error) {
	l.log.Warn("broker connection lost", "err", err)
	for _, s := range l.status {
		s.refresh()
	}
}

func (l *Link) statusPayload(gate, state string) []byte {
	st := protocol.GateStatus{V: protocol.Version, LotID: l.cfg.LotID, GateID: gate, State: state, At: time.Now().UTC()}
	if state == protocol.StateOnline {
		st.SyncSeq = l.applied.Load()
	}
	b, _ := protocol.Encode(st) // a struct of strings, ints and a time always encodes
	return b
}

// onMessage runs in paho's router, in arrival order. It checks and
// verifies; the applier orders and stores.
func (l *Link) onMessage(_ mqtt.Client, m mqtt.Message) {
	if m.Topic() != l.resTopic {
		l.invalid.Add(1)
		return
	}
	var c protocol.ReservationChange
	if err := json.Unmarshal(m.Payload(), &c); err != nil {
		l.invalid.Add(1)
		l.log.Warn("undecodable change", "err", err)
		return
	}
	if err := l.check(&c); err != nil {
		return
	}
	select {
	case l.live <- c:
	case <-l.ctx.Done():
	}
}

// check validates and verifies a change, counting what it refuses.
func (l *Link) check(c *protocol.ReservationChange) error {
	if err := c.Validate(); err != nil {
		l.invalid.Add(1)
		l.log.Warn("invalid change refused", "seq", c.Seq, "err", err)
		return err
	}
	if c.LotID != l.cfg.LotID {
		l.invalid.Add(1)
		l.log.Warn("change for another lot refused", "lot_id", c.LotID, "seq", c.Seq)
		return fmt.Errorf("change for lot %q", c.LotID)
	}
	if err := c.Verify(l.cfg.Keys); err != nil {
		l.badSigs.Add(1)
		l.log.Warn("change with a bad signature refused", "seq", c.Seq, "reservation_id", c.Reservation.ID)
		return err
	}
	return nil
}

// applier owns the reorder buffer: every change, live or caught up, passes
// through it and is applied only when it continues the applied sequence.
func (l *Link) applier() {
	pending := map[int64]protocol.ReservationChange{}
	var gapTimer *time.Timer
	var gapC, retryC <-chan time.Time
	for {
		var batch []protocol.ReservationChange
		select {
		case <-l.ctx.Done():
			return
		case c := <-l.live:
			batch = append(batch, c)
		more:
			for len(batch) < 1000 {
				select {
				case c := <-l.live:
					batch = append(batch, c)
				default:
					break more
				}
			}
		case page := <-l.caught:
			batch = page
		case <-gapC:
			gapC = nil
			if len(pending) > 0 {
				l.log.Info("gap in reservation changes; catching up", "applied", l.applied.Load())
				l.requestCatchUp()
			}
			continue
		case <-retryC:
			retryC = nil
		}
		applied := l.applied.Load()
		for _, c := range batch {
			if _, dup := pending[c.Seq]; c.Seq <= applied || dup {
				l.duplicates.Add(1)
				continue
			}
			if len(pending) >= maxPending {
				continue // catch-up fetches it again
			}
			pending[c.Seq] = c
		}
		if err := l.flush(pending); err != nil {
			l.log.Error("applying changes failed", "err", err)
			if retryC == nil {
				retryC = time.After(time.Second)
			}
		}
		if len(pending) == 0 {
			l.gapOpen.Store(false)
			if gapTimer != nil {
				gapTimer.Stop()
			}
			gapC = nil
		} else {
			l.gapOpen.Store(true)
			if gapC == nil {
				gapTimer = time.NewTimer(l.cfg.GapWait)
				gapC = gapTimer.C
			}
		}
	}
}

// flush applies the run of pending changes that continues the applied seq.
func (l *Link) flush(pending map[int64]protocol.ReservationChange) error {
	applied := l.applied.Load()
	var run []protocol.ReservationChange
	for next := applied + 1; ; next++ {
		c, ok := pending[next]
		if !ok {
			break
		}
		run = append(run, c)
	}
	if len(run) == 0 {
		return nil
	}
	last, err := l.store.Apply(run)
	if err != nil {
		return err
	}
	for _, c := range run {
		delete(pending, c.Seq)
	}
	l.applied.Store(last)
	l.appliedN.Add(uint64(len(run)))
	if l.cfg.OnApplied != nil {
		l.cfg.OnApplied(last)
	}
	return nil
}

func (l *Link) requestCatchUp() {
	if l.cfg.CloudURL != "" {
		signal(l.catchReq)
	}
}

func (l *Link) catchUpLoop() {
	backoff := time.Second
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.catchReq:
		}
		for {
			err := l.catchUp()
			if err == nil {
				l.catchUps.Add(1)
				l.startup.Store(true)
				backoff = time.Second
				break
			}
			l.catchUpErrs.Add(1)
			l.log.Warn("catch-up failed", "err", err, "retry_in", backoff)
			if l.startup.Load() && !l.gapOpen.Load() {
				break // live messages closed the gap meanwhile
			}
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// catchUp reads the change log from the applied seq to its end and hands
// each verified page to the applier.
func (l *Link) catchUp() error {
	after := l.applied.Load()
	for {
		page, err := l.fetch(after)
		if err != nil {
			return err
		}
		if page.LotID != "" && page.LotID != l.cfg.LotID {
			return fmt.Errorf("catch-up: page for lot %q", page.LotID)
		}
		for i := range page.Changes {
			if err := l.check(&page.Changes[i]); err != nil {
				// Nothing after a refused change can be applied in order.
				seq := page.Changes[i].Seq
				if i > 0 {
					l.sendPage(page.Changes[:i])
				}
				return fmt.Errorf("catch-up: change %d: %w", seq, err)
			}
		}
		if len(page.Changes) == 0 {
			return nil
		}
		if !l.sendPage(page.Changes) {
			return l.ctx.Err()
		}
		after = page.Changes[len(page.Changes)-1].Seq
		if !page.More {
			return nil
		}
	}
}

func (l *Link) sendPage(changes []protocol.ReservationChange) bool {
	select {
	case l.caught <- changes:
		return true
	case <-l.ctx.Done():
		return false
	}
}

func (l *Link) fetch(after int64) (*protocol.ChangesPage, error) {
	u := fmt.Sprintf("%s/v1/edge/lots/%s/changes?after=%d", strings.TrimRight(l.cfg.CloudURL, "/"), url.PathEscape(l.cfg.LotID), after)
	req, err := http.NewRequestWithContext(l.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("catch-up request: %w", err)
	}
	if l.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+l.cfg.Token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := l.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("catch-up after %d: %w", after, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("catch-up refused (%s): check PARKGATE_EDGE_TOKEN", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("catch-up after %d: %s", after, resp.Status)
	}
	var page protocol.ChangesPage
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&page); err != nil {
		return nil, fmt.Errorf("catch-up page: %w", err)
	}
	return &page, nil
}

// drainer publishes the outbox whenever it may have something to send.
func (l *Link) drainer() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.store.Signal():
		case <-l.wake:
		case <-tick.C:
		}
		if err := l.drain(); err != nil {
			l.log.Warn("outbox drain stopped", "err", err)
		}
	}
}

var errUnconfirmed = errors.New("publishes not confirmed on this connection")

// drain sends the outbox oldest first, a window at a time, and removes what
// the broker acknowledged on the connection it was sent on.
func (l *Link) drain() error {
	for l.ctx.Err() == nil {
		// Read the counters before checking the connection: an attempt or
		// resume after this point must make the window untrusted.
		attempts, resumes := l.attempts.Load(), l.pstore.resumes.Load()
		if !l.client.IsConnectionOpen() || !l.pstore.ready() {
			return nil
		}
		entries, err := l.store.Pending(l.cfg.Window)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		tokens := make([]mqtt.Token, 0, len(entries))
		for _, e := range entries {
			if !l.pstore.ready() || l.attempts.Load() != attempts {
				break // a reconnect began: wait for its resume, then start again from the oldest
			}
			tokens = append(tokens, l.client.Publish(protocol.GateEventsTopic(l.cfg.LotID, e.GateID), 1, false, e.Payload))
		}
		deadline := time.Now().Add(l.cfg.PublishTimeout)
		acked := make([]uint64, 0, len(entries))
		for i, t := range tokens {
			if !t.WaitTimeout(time.Until(deadline)) {
				break
			}
			if t.Error() == nil && l.attempts.Load() == attempts && l.pstore.resumes.Load() == resumes {
				acked = append(acked, entries[i].Key)
			}
		}
		if err := l.store.Ack(acked); err != nil {
			return err
		}
		l.published.Add(uint64(len(acked)))
		if len(acked) < len(entries) {
			return fmt.Errorf("%d of %d: %w", len(entries)-len(acked), len(entries), errUnconfirmed)
		}
	}
	return nil
}

// resumeCountingStore is paho's ordered memory store (so a resume resends
// in the original order) that watches paho resume the session. paho reads
// the whole store exactly once per connection, at the start of resume, and
// then marks and resends what it found and completes the tokens of earlier
// publishes without any PUBACK. The store counts those reads, and knows when
// a connection attempt has begun whose resume has not read it yet: nothing
// may be published in that window, or paho would resend (and race on) the
// very packet it is sending.
type resumeCountingStore struct {
	*mqtt.OrderedMemoryStore
	resumes  atomic.Uint64
	mu       sync.Mutex
	awaiting bool          // an attempt began; its resume has not read the store
	resumed  chan struct{} // closed when awaiting goes false
}

func newResumeCountingStore() *resumeCountingStore {
	s := &resumeCountingStore{OrderedMemoryStore: mqtt.NewOrderedMemoryStore(), resumed: make(chan struct{})}
	close(s.resumed)
	return s
}

// attempt is called before every connection attempt.
func (s *resumeCountingStore) attempt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.awaiting {
		s.awaiting = true
		s.resumed = make(chan struct{})
	}
}

// Put keeps a copy of a publish, and Get hands out a fresh copy, so that
// the packet the store holds is never one a connection's writer holds.
// paho's resume sets the Dup flag of what it gets from the store while the
// original may still be on its way out, queued before the connection
// dropped, and the writer both reads the flags and sets the packet's length
// as it sends: a data race in paho (eclipse-paho/paho.mqtt.golang#703,
// still open in 1.5.1), which the race detector found in TestFlakyNetwork
// twice, once on each side. paho stores a publish before it queues it, so
// copying in Put reads a packet no other goroutine has yet. The event may
// go out twice, which QoS 1 allows and the cloud's event-id dedupe absorbs.
func (s *resumeCountingStore) Put(key string, m packets.ControlPacket) {
	s.OrderedMemoryStore.Put(key, clonePublish(m))
}

func (s *resumeCountingStore) Get(key string) packets.ControlPacket {
	return clonePublish(s.OrderedMemoryStore.Get(key))
}

// clonePublish copies a publish packet (its payload is only ever read);
// other packets pass through.
func clonePublish(m packets.ControlPacket) packets.ControlPacket {
	if p, ok := m.(*packets.PublishPacket); ok {
		cp := *p
		return &cp
	}
	return m
}

func (s *resumeCountingStore) All() []string {
	keys := s.OrderedMemoryStore.All()
	s.resumes.Add(1)
	s.settled()
	return keys
}

// Reset is what paho calls instead of resuming when a clean session first
// connects: the store is emptied, so publishing is safe from then on.
func (s *resumeCountingStore) Reset() {
	s.OrderedMemoryStore.Reset()
	s.resumes.Add(1)
	s.settled()
}

func (s *resumeCountingStore) settled() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.awaiting {
		s.awaiting = false
		close(s.resumed)
	}
}

// ready reports whether no resume is pending.
func (s *resumeCountingStore) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.awaiting
}

// waitResumed waits until no resume is pending, or d passes.
func (s *resumeCountingStore) waitResumed(d time.Duration) bool {
	s.mu.Lock()
	ch := s.resumed
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
