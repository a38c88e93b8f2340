package mqttlink

import (
	"crypto/tls"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/protocol"
)

// statusConn carries the retained status of one gate other than the first.
// MQTT gives a connection one last will, so a will per gate takes a
// connection per gate: this one only publishes its gate's status, mirrors
// the main connection's state (a gate is online when the agent's link is)
// and leaves "offline" as its will when the agent dies.
type statusConn struct {
	link   *Link
	gate   string
	topic  string
	client mqtt.Client
	store  *resumeCountingStore // paho resumes even clean sessions on reconnect: same window as the main link
	mu     sync.Mutex           // one refresh at a time, so the last one publishes the current truth
}

func newStatusConn(l *Link, gate string) *statusConn {
	s := &statusConn{link: l, gate: gate, topic: protocol.GateStatusTopic(l.cfg.LotID, gate), store: newResumeCountingStore()}
	o := mqtt.NewClientOptions()
	for _, b := range l.cfg.Brokers {
		o.AddBroker(b)
	}
	o.SetClientID(l.cfg.ClientID+"-status-"+gate).
		SetCleanSession(true). // nothing to keep: the retained message is the state
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(l.cfg.ReconnectMax).
		SetKeepAlive(l.cfg.KeepAlive).
		SetConnectTimeout(5*time.Second).
		SetWriteTimeout(5*time.Second).
		SetStore(s.store).
		SetConnectionAttemptHandler(func(_ *url.URL, tc *tls.Config) *tls.Config {
			s.store.attempt()
			return tc
		}).
		SetOnConnectHandler(func(mqtt.Client) {
			if s.store.waitResumed(10 * time.Second) {
				s.refresh()
			}
		}).
		SetBinaryWill(s.topic, l.statusPayload(gate, protocol.StateOffline), 1, true)
	if l.cfg.Username != "" {
		// A user of its own: the shipped broker makes a client's id its
		// username, so under the lot's user this connection would take the
		// main one's session. The acl grants `{lot}/gates/{gate}` just this
		// gate's status topic.
		o.SetUsername(l.cfg.Username + "/gates/" + gate).SetPassword(l.cfg.Password)
	}
	s.client = mqtt.NewClient(o)
	return s
}

// refresh publishes the gate as online when the main connection is up and
// offline when it is not. It reads the main connection's state under the
// lock: a refresh for "main connected" racing one for "companion
// connected" cannot leave a stale state as the last word.
func (s *statusConn) refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := protocol.StateOffline
	if s.link.client.IsConnectionOpen() {
		state = protocol.StateOnline
	}
	s.publishLocked(state)
}

// publish publishes state whatever the main connection does (for Close).
func (s *statusConn) publish(state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publishLocked(state)
}

func (s *statusConn) publishLocked(state string) {
	if !s.client.IsConnectionOpen() || !s.store.ready() {
		return // its OnConnect publishes once it is connected and resumed
	}
	t := s.client.Publish(s.topic, 1, true, s.link.statusPayload(s.gate, state))
	t.WaitTimeout(time.Second)
}

// statusPayload is a gate's retained status; an online one carries the applied
// sequence number, so the cloud can see how far the lot has synced.
func (l *Link) statusPayload(gate, state string) []byte {
	st := protocol.GateStatus{V: protocol.Version, LotID: l.cfg.LotID, GateID: gate, State: state, At: time.Now().UTC()}
	if state == protocol.StateOnline {
		st.SyncSeq = l.applied.Load()
	}
	b, _ := protocol.Encode(st) // a struct of strings, ints and a time always encodes
	return b
}

// statusReporter republishes every gate's retained online status after
// changes were applied, at most once per StatusEvery, so the status carries
// the seq the agent has applied rather than the one it had when it last
// connected (the cloud's GET /v1/lots/{id}/edges answers applied_seq from
// it). A connection that is down publishes nothing: onConnect publishes
// the current seq when it is back.
func (l *Link) statusReporter() {
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.statusDue:
		}
		l.statusMu.Lock()
		if !l.closing {
			if l.client.IsConnectionOpen() && l.pstore.ready() {
				t := l.client.Publish(protocol.GateStatusTopic(l.cfg.LotID, l.cfg.Gates[0]), 1, true,
					l.statusPayload(l.cfg.Gates[0], protocol.StateOnline))
				t.WaitTimeout(time.Second)
			}
			for _, s := range l.status {
				s.refresh()
			}
		}
		l.statusMu.Unlock()
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(l.cfg.StatusEvery):
		}
	}
}
