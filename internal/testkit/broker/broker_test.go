package broker_test

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/internal/testkit/broker"
)

func connect(t *testing.T, b *broker.Broker, id string, clean bool, handler mqtt.MessageHandler) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetDefaultPublishHandler(handler)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

// TestRestartKeepsQueuedMessages proves what the edge tests rely on: a QoS 1
// message queued for an absent persistent session survives a graceful
// broker restart and is delivered when the client returns.
func TestRestartKeepsQueuedMessages(t *testing.T) {
	b := broker.Start(t)
	got := make(chan string, 1)
	handler := func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }

	sub := connect(t, b, "sub", false, handler)
	if tok := sub.Subscribe("t/1", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	sub.Disconnect(100)

	pub := connect(t, b, "pub", true, nil)
	if tok := pub.Publish("t/1", 1, false, "hello"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	pub.Disconnect(100)

	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	sub = connect(t, b, "sub", false, handler)
	defer sub.Disconnect(100)
	select {
	case m := <-got:
		if m != "hello" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("queued message lost across restart; broker log:\n%s", b.Log())
	}
}

func TestKillAndStop(t *testing.T) {
	b := broker.Start(t)
	if err := b.Kill(); err != nil || b.Running() {
		t.Fatalf("Kill: %v, running %v", err, b.Running())
	}
	if err := b.Restart(); err != nil || !b.Running() {
		t.Fatalf("Restart after Kill: %v", err)
	}
	if err := b.Stop(); err != nil || b.Running() {
		t.Fatalf("Stop: %v", err)
	}
}
