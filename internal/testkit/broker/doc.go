// Package broker runs a real Mosquitto for tests and the simulator: its own
// process on a free loopback port, with persistence in its own directory, so
// a test can stop, restart or kill it without touching the broker other
// people share. Restart keeps the port and the persistence file, so
// persistent sessions and queued QoS 1 messages survive it as they do in
// production; Kill does not let Mosquitto save, as a crash would not.
// It is a test kit, not part of any service: it lives under internal/testkit
// so cloud, edge and sim tests and the simulator all import it from one
// neutral place.
package broker
