package protocol

import (
	"fmt"
	"strings"
)

// Root is the prefix of every parkgate topic; the version in it changes only
// when a message changes incompatibly, so old and new agents can share a broker.
const Root = "parkgate/v1"

// ReservationsTopic is where the cloud publishes a lot's reservation changes
// (QoS 1) and where that lot's edge agent subscribes.
func ReservationsTopic(lotID string) string {
	return Root + "/lots/" + lotID + "/reservations"
}

// GateEventsTopic is where an edge agent publishes the decisions of one gate.
func GateEventsTopic(lotID, gateID string) string {
	return Root + "/lots/" + lotID + "/gates/" + gateID + "/events"
}

// GateStatusTopic carries a gate's retained status; the agent's last will
// marks it offline when the broker loses it.
func GateStatusTopic(lotID, gateID string) string {
	return Root + "/lots/" + lotID + "/gates/" + gateID + "/status"
}

// AllGateEventsFilter matches the events of every gate of every lot.
const AllGateEventsFilter = Root + "/lots/+/gates/+/events"

// SharedGateEventsFilter is the MQTT v5/Mosquitto shared subscription that
// lets several cloud replicas split the event stream between them.
func SharedGateEventsFilter(group string) string {
	return "$share/" + group + "/" + AllGateEventsFilter
}

// ParseGateTopic splits a gate events or status topic into its lot and gate
// ids and its kind ("events" or "status").
func ParseGateTopic(topic string) (lotID, gateID, kind string, err error) {
	rest, ok := strings.CutPrefix(topic, Root+"/lots/")
	if !ok {
		return "", "", "", fmt.Errorf("protocol: unknown topic %q", topic)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[1] != "gates" || parts[0] == "" || parts[2] == "" ||
		(parts[3] != "events" && parts[3] != "status") {
		return "", "", "", fmt.Errorf("protocol: unknown topic %q", topic)
	}
	return parts[0], parts[2], parts[3], nil
}
