package mqttstore_test

import (
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/parkgate/parkgate/internal/mqttstore"
)

// TestCopying: what paho's resume changes on a packet it got from the
// store (the Dup flag) is never seen by the packet put there, nor by the
// next Get.
func TestCopying(t *testing.T) {
	s := mqttstore.Copying{Store: mqtt.NewMemoryStore()}
	s.Open()
	defer s.Close()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.MessageID, p.TopicName, p.Payload = 1, 7, "t", []byte("x")
	s.Put("o.7", p)
	got := s.Get("o.7").(*packets.PublishPacket)
	if got == p || got.TopicName != "t" || string(got.Payload) != "x" || got.MessageID != 7 {
		t.Fatalf("Get returned %p %+v for %p", got, got, p)
	}
	got.Dup = true
	if p.Dup || s.Get("o.7").(*packets.PublishPacket).Dup {
		t.Fatal("a change to a packet handed out reached the store or the original")
	}
	ack := packets.NewControlPacket(packets.Pubrel)
	s.Put("o.8", ack)
	if s.Get("o.8") != ack {
		t.Fatal("a packet other than a publish was copied")
	}
}
