// Package mqttstore holds the one work-around both MQTT sides of parkgate
// need in paho's session store: paho's resume sets the Dup flag of a
// publish it reads from the store while the same packet may still be on
// its way out through the previous connection's writer, which reads the
// flags and sets the packet's length as it sends — a data race in paho
// (eclipse-paho/paho.mqtt.golang#703, open in 1.5.1) that the race
// detector has found in the edge's and the cloud relay's tests. Storing
// and handing out copies of publishes means the packet a store holds is
// never one a writer holds.
package mqttstore

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Copying is a paho store that keeps a copy of each publish put in it and
// hands out a fresh copy on every Get. paho stores a publish before it
// queues it, so the copy in Put reads a packet no other goroutine has yet.
// A resent publish may go out twice, which QoS 1 allows.
type Copying struct {
	mqtt.Store
}

// Put stores a copy of m.
func (s Copying) Put(key string, m packets.ControlPacket) { s.Store.Put(key, ClonePublish(m)) }

// Get returns a copy of what is stored under key.
func (s Copying) Get(key string) packets.ControlPacket { return ClonePublish(s.Store.Get(key)) }

// ClonePublish copies a publish packet (its payload is only ever read, so
// it is shared); other packets pass through.
func ClonePublish(m packets.ControlPacket) packets.ControlPacket {
	if p, ok := m.(*packets.PublishPacket); ok {
		cp := *p
		return &cp
	}
	return m
}
