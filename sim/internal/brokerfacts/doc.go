// Package brokerfacts pins down, as tests, how the Mosquitto that parkgate
// runs on behaves where the simulator found it matters: which messages a
// persistent session still gets after the broker restarts. The tests assert
// what the broker does today, so a broker upgrade that changes it shows up
// here first.
package brokerfacts
