package brokerfacts

import (
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/internal/testkit/broker"
)

func connect(t *testing.T, b *broker.Broker, id string, clean bool, got *atomic.Int32) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(id).SetCleanSession(clean).SetAutoReconnect(false)
	if got != nil {
		// The default handler gets what the session had queued, before any
		// Subscribe of this connection.
		o.SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) { got.Add(1) })
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

// publish sends n QoS 1 messages and waits for each PUBACK: the publisher
// is told every one was taken.
func publish(t *testing.T, b *broker.Broker, n int) {
	t.Helper()
	p := connect(t, b, "publisher", true, nil)
	defer p.Disconnect(100)
	for range n {
		if tok := p.Publish("parkgate/v1/lots/l/gates/g/events", 1, false, []byte("e")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// TestRestartForgetsSharedSubscriptions: a persistent session keeps a plain
// subscription across a broker restart, and messages published while the
// subscriber is away wait for it. A shared subscription ($share/…) is not
// kept (reliably): after the restart, what is published until the
// subscriber subscribes again is acknowledged to the publisher and then,
// all of it or most, dropped.
//
// This is how the simulator's broker-restart scenario loses gate events:
// the cloud's ingest reads them through $share/parkcloud/…; an edge that
// reconnects after the restart before the ingest has re-subscribed drains
// its outbox into the void, each event PUBACKed, so it leaves the outbox.
func TestRestartForgetsSharedSubscriptions(t *testing.T) {
	for _, tt := range []struct {
		name, filter string
		kept         bool
	}{
		{"Plain", "parkgate/v1/lots/+/gates/+/events", true},
		{"Shared", "$share/parkcloud/parkgate/v1/lots/+/gates/+/events", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := broker.Start(t)
			var got atomic.Int32
			c := connect(t, b, "ingest", false, &got)
			if tok := c.Subscribe(tt.filter, 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
			c.Disconnect(100)

			// Away, without a restart: both kinds are queued.
			publish(t, b, 3)
			c = connect(t, b, "ingest", false, &got)
			waitFor(&got, 3)
			if n := got.Load(); n != 3 {
				t.Fatalf("away without a restart: got %d of 3", n)
			}
			c.Disconnect(100)

			// Away across a restart.
			if err := b.Restart(); err != nil {
				t.Fatal(err)
			}
			got.Store(0)
			publish(t, b, 3)
			c = connect(t, b, "ingest", false, &got)
			defer c.Disconnect(100)
			if tt.kept {
				waitFor(&got, 3)
			}
			time.Sleep(300 * time.Millisecond) // nothing more is coming
			n := got.Load()
			switch {
			case tt.kept && n != 3:
				t.Fatalf("across a restart: got %d of 3, want all", n)
			case !tt.kept && n == 3:
				t.Fatalf("across a restart: got all 3; the shared subscription was kept")
			case !tt.kept:
				// Usually none; once in a while (seen in one run of many)
				// some survive. Either way the publisher was told all
				// three were taken and the subscriber did not get them all.
				t.Logf("across a restart: got %d of 3", n)
			}
		})
	}
}

func waitFor(n *atomic.Int32, want int32) {
	deadline := time.Now().Add(3 * time.Second)
	for n.Load() < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}
