package mqttlink

import (
	"crypto/tls"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/parkgate/parkgate/internal/mqttstore"
	"github.com/parkgate/parkgate/protocol"
)

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
	// Ask the cloud at once rather than at the next outage poll: a change
	// published while the connection was failing may never arrive.
	l.requestCatchUp()
	for _, s := range l.status {
		s.refresh()
	}
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

// Put and Get copy publishes (mqttstore): paho's resume would otherwise
// race its own writer on the packet the store holds.
func (s *resumeCountingStore) Put(key string, m packets.ControlPacket) {
	s.OrderedMemoryStore.Put(key, mqttstore.ClonePublish(m))
}

func (s *resumeCountingStore) Get(key string) packets.ControlPacket {
	return mqttstore.ClonePublish(s.OrderedMemoryStore.Get(key))
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
