package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/internal/mqttstore"
)

// MQTTConfig says how to reach the broker.
type MQTTConfig struct {
	// Brokers are tried in order at every connect, for failover:
	// tcp://host:1883, ssl://host:8883.
	Brokers []string
	// ClientID must be unique per connection on the broker (a second client
	// with the same id takes the session over and the first is dropped).
	// The ingest needs it fixed per replica, for its persistent session;
	// the relay makes one up when it is empty.
	ClientID           string
	Username, Password string
	TLS                *tls.Config
	// ConnectTimeout bounds one connection attempt (default 10s).
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keepalive (default 30s).
	KeepAlive time.Duration
}

func (c MQTTConfig) options() (*mqtt.ClientOptions, error) {
	if len(c.Brokers) == 0 {
		return nil, errors.New("relay: no MQTT broker configured")
	}
	o := mqtt.NewClientOptions()
	for _, b := range c.Brokers {
		o.AddBroker(b)
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	o.SetClientID(c.ClientID).
		SetUsername(c.Username).
		SetPassword(c.Password).
		SetConnectTimeout(c.ConnectTimeout).
		SetKeepAlive(c.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		// 3.1.1 explicitly: paho would otherwise fall back to 3.1 on a
		// refused CONNECT and hide the real reason.
		SetProtocolVersion(4).
		SetStore(mqttstore.Copying{Store: mqtt.NewMemoryStore()})
	if c.TLS != nil {
		o.SetTLSConfig(c.TLS)
	}
	return o, nil
}

// publisher is what the relay needs of an MQTT connection. A publish's
// completion counts as a PUBACK only if the token finished without error and
// epoch() still equals the epoch publish returned: the connection it went out
// on is still the current one.
type publisher interface {
	// connect makes sure a connection is up, making a new one if the last
	// one is gone.
	connect(ctx context.Context) error
	// publish sends payload at QoS 1 and returns its token and the epoch of
	// the connection it was handed to.
	publish(topic string, payload []byte) (mqtt.Token, uint64)
	// epoch changes whenever a connection is made or lost.
	epoch() uint64
	close()
}

// session is the relay's publisher. It never lets paho reconnect by itself:
// on a reconnect paho 1.5.1 re-sends stored in-flight publishes and completes
// their original tokens without an error before any PUBACK (messageIds.claimID
// completes the replaced token), so a completion would be no proof of
// delivery. With auto-reconnect off and a clean session, a lost connection
// fails every in-flight token instead, and session makes a new client for the
// next connection; the epoch counter is a second guard on top of that.
// Nothing is lost by the clean session: the outbox is the relay's store.
type session struct {
	cfg MQTTConfig
	log *slog.Logger

	mu     sync.Mutex
	client mqtt.Client
	gen    atomic.Uint64
}

func newSession(cfg MQTTConfig, log *slog.Logger) (*session, error) {
	if _, err := cfg.options(); err != nil {
		return nil, err
	}
	return &session{cfg: cfg, log: log}, nil
}

func (s *session) connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil && s.client.IsConnectionOpen() {
		return nil
	}
	if s.client != nil {
		s.client.Disconnect(0)
		s.client = nil
	}
	opts, err := s.cfg.options()
	if err != nil {
		return err
	}
	gen := s.gen.Add(1)
	opts.SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			// Only the current connection's loss moves the epoch on; a late
			// report from an older client must not distrust the new one.
			s.gen.CompareAndSwap(gen, gen+1)
			s.log.Warn("relay: mqtt connection lost", "err", err)
		})
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.Disconnect(0)
		return ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect mqtt: %w", err)
	}
	s.client = c
	return nil
}

func (s *session) publish(topic string, payload []byte) (mqtt.Token, uint64) {
	s.mu.Lock()
	c, gen := s.client, s.gen.Load()
	s.mu.Unlock()
	if c == nil {
		return doneToken{mqtt.ErrNotConnected}, gen
	}
	return c.Publish(topic, 1, false, payload), gen
}

func (s *session) epoch() uint64 { return s.gen.Load() }

func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		s.client.Disconnect(250)
		s.client = nil
	}
	s.gen.Add(1)
}

// doneToken is a token that has already completed, with err.
type doneToken struct{ err error }

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (t doneToken) Wait() bool                     { return true }
func (t doneToken) WaitTimeout(time.Duration) bool { return true }
func (t doneToken) Done() <-chan struct{}          { return closedCh }
func (t doneToken) Error() error                   { return t.err }
