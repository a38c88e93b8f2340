package mqttlink_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/edge/mqttlink"
	"github.com/parkgate/parkgate/internal/mqttstore"
	"github.com/parkgate/parkgate/internal/testkit/broker"
	"github.com/parkgate/parkgate/protocol"
)

const lot = "lot-1"

var t0 = time.Now().UTC().Truncate(time.Second)

func cloudKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

// change makes the signed change seq of the test lot: plate P{seq}.
func change(key ed25519.PrivateKey, seq int64) protocol.ReservationChange {
	c := protocol.ReservationChange{V: protocol.Version, LotID: lot, Seq: seq, Op: protocol.OpUpsert,
		Reservation: protocol.Reservation{ID: fmt.Sprintf("r%d", seq), Plate: fmt.Sprintf("P%d", seq),
			StartsAt: t0.Add(-time.Hour), EndsAt: t0.Add(time.Hour), Status: protocol.StatusConfirmed}}
	c.Sign(key)
	return c
}

// waitFor polls cond until it holds or the deadline passes; used where the
// condition has no signal of its own (another process's state).
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// appliedWatch turns OnApplied into something a test can wait on.
type appliedWatch struct {
	mu   sync.Mutex
	seq  int64
	cond chan struct{}
}

func newAppliedWatch() *appliedWatch { return &appliedWatch{cond: make(chan struct{})} }

func (w *appliedWatch) OnApplied(seq int64) {
	w.mu.Lock()
	w.seq = seq
	close(w.cond)
	w.cond = make(chan struct{})
	w.mu.Unlock()
}

func (w *appliedWatch) wait(t testing.TB, seq int64, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		w.mu.Lock()
		got, ch := w.seq, w.cond
		w.mu.Unlock()
		if got >= seq {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("applied seq %d, want %d within %v", got, seq, d)
		}
	}
}

type bundle struct {
	broker  *broker.Broker
	store   *bolt.Store
	key     ed25519.PrivateKey
	applied *appliedWatch
	cfg     mqttlink.Config
}

func setup(t testing.TB, brokerURL string, b *broker.Broker) *bundle {
	t.Helper()
	if b == nil {
		b = broker.Start(t)
	}
	if brokerURL == "" {
		brokerURL = b.URL()
	}
	s, err := bolt.Open(filepath.Join(t.TempDir(), "edge.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	key := cloudKey(1)
	w := newAppliedWatch()
	return &bundle{broker: b, store: s, key: key, applied: w, cfg: mqttlink.Config{
		Brokers:      []string{brokerURL},
		LotID:        lot,
		Gates:        []string{"entry-1", "exit-1"},
		Keys:         []ed25519.PublicKey{key.Public().(ed25519.PublicKey)},
		GapWait:      200 * time.Millisecond,
		ReconnectMax: 500 * time.Millisecond,
		KeepAlive:    2 * time.Second,
		OnApplied:    w.OnApplied,
	}}
}

// watchers numbers start's status watchers: a client id each.
var watchers atomic.Int64

// start starts a link for the bundle's store and waits until it is
// connected and subscribed: Connected turns true before the link's first
// SUBSCRIBE is acknowledged, and a change published in between is not its
// session's (a fresh session's first connect loses it). The link publishes
// its first gate's retained "online" only after the SUBACK, so seeing it
// on the broker says the subscription is in place.
func (b *bundle) start(t testing.TB) *mqttlink.Link {
	t.Helper()
	var online atomic.Bool
	watch := client(t, b.broker.URL(), fmt.Sprint("online-watch-", watchers.Add(1)), true, nil)
	status := protocol.GateStatusTopic(lot, b.cfg.Gates[0])
	if tok := watch.Subscribe(status, 1, func(_ mqtt.Client, m mqtt.Message) {
		var s protocol.GateStatus
		if json.Unmarshal(m.Payload(), &s) == nil {
			online.Store(s.State == protocol.StateOnline)
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", status, tok.Error())
	}
	l := b.startOffline(t)
	waitFor(t, 10*time.Second, "link connected", l.Connected)
	waitFor(t, 10*time.Second, "link subscribed (its gate online)", online.Load)
	watch.Disconnect(0)
	return l
}

func (b *bundle) startOffline(t testing.TB) *mqttlink.Link {
	t.Helper()
	l, err := mqttlink.New(b.cfg, b.store)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// client connects a plain paho client (the cloud's side in these tests).
func client(t testing.TB, url, id string, clean bool, handler mqtt.MessageHandler) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).SetDefaultPublishHandler(handler).
		SetStore(mqttstore.Copying{Store: mqtt.NewMemoryStore()}) // paho#703, as the link does
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t testing.TB, c mqtt.Client, topic string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Publish(topic, 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// receiver plays the cloud's gate-event ingest: it records events in
// arrival order and statuses by gate.
type receiver struct {
	mu       sync.Mutex
	events   []protocol.GateEvent
	statuses map[string]protocol.GateStatus
}

func newReceiver(t *testing.T, url string) *receiver {
	t.Helper()
	r := &receiver{statuses: map[string]protocol.GateStatus{}}
	c := client(t, url, "cloud-ingest", false, func(_ mqtt.Client, m mqtt.Message) {
		_, gate, kind, err := protocol.ParseGateTopic(m.Topic())
		if err != nil {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		switch kind {
		case "events":
			var e protocol.GateEvent
			if json.Unmarshal(m.Payload(), &e) == nil {
				r.events = append(r.events, e)
			}
		case "status":
			var s protocol.GateStatus
			if json.Unmarshal(m.Payload(), &s) == nil {
				r.statuses[gate] = s
			}
		}
	})
	for _, f := range []string{protocol.GateEventsTopic(lot, "+"), protocol.GateStatusTopic(lot, "+")} {
		if tok := c.Subscribe(f, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
	return r
}

// unique returns event ids in order of first arrival, as an ingest that
// dedupes by event id sees them.
func (r *receiver) unique() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, e := range r.events {
		if !seen[e.EventID] {
			seen[e.EventID] = true
			out = append(out, e.EventID)
		}
	}
	return out
}

func (r *receiver) status(gate string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statuses[gate].State
}

var _ mqttlink.KeyMemory = (*bolt.Store)(nil)

// fakeCloud serves the catch-up endpoint from a signed change log, and key
// registration: it answers 503 while refuseKeys is set.
type fakeCloud struct {
	mu         sync.Mutex
	log        []protocol.ReservationChange
	pageSize   int
	token      string
	requests   int
	keyCalls   int
	refuseKeys bool
	keys       []string
	srv        *httptest.Server
}

func (f *fakeCloud) setRefuseKeys(v bool) {
	f.mu.Lock()
	f.refuseKeys = v
	f.mu.Unlock()
}

// keyState returns how often registration was tried and what was registered.
func (f *fakeCloud) keyState() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keyCalls, append([]string(nil), f.keys...)
}

func (f *fakeCloud) registerKey(w http.ResponseWriter, r *http.Request) {
	f.keyCalls++
	if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if f.refuseKeys {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var body struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if _, err := protocol.ParsePublicKey(body.PublicKey); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.keys = append(f.keys, body.PublicKey)
	w.WriteHeader(http.StatusCreated)
}

func newFakeCloud(t *testing.T, token string) *fakeCloud {
	f := &fakeCloud{pageSize: 3, token: token}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCloud) add(cs ...protocol.ReservationChange) {
	f.mu.Lock()
	f.log = append(f.log, cs...)
	f.mu.Unlock()
}

func (f *fakeCloud) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func (f *fakeCloud) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/v1/edge/lots/"+lot+"/keys" {
		f.registerKey(w, r)
		return
	}
	f.requests++
	if r.URL.Path != "/v1/edge/lots/"+lot+"/changes" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"bad token"}}`)
		return
	}
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	page := protocol.ChangesPage{LotID: lot, Changes: []protocol.ReservationChange{}}
	if n := len(f.log); n > 0 {
		page.LastSeq = f.log[n-1].Seq
	}
	for _, c := range f.log {
		if c.Seq > after && len(page.Changes) < f.pageSize {
			page.Changes = append(page.Changes, c)
		}
	}
	if k := len(page.Changes); k > 0 && page.Changes[k-1].Seq < page.LastSeq {
		page.More = true
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(page)
}

// proxy stands between the agent and the broker so a test can cut the
// agent's network without touching the broker others use.
type proxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) url() string { return "tcp://" + p.addr }

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln { // cut while this one was being set up
				p.mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
}

// cut drops every connection and refuses new ones: the network is gone.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// restore accepts connections again on the same address.
func (p *proxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}
