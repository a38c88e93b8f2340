// Package tcpproxy stands in, for tests and the simulator, for a network link
// that can fail: a TCP proxy on a loopback port that pipes every connection
// to a target address until Cut closes all of them and refuses new ones,
// which is what an edge computer sees when its uplink drops, and Restore lets
// traffic through again. The simulator puts one between each edge agent and
// the MQTT broker, so it can cut one lot off without touching the others, the
// broker or the agent's process; tests do the same. It is a test kit, not part
// of any service, and lives under internal/testkit so cloud, edge and sim all
// import it from one neutral place.
package tcpproxy
