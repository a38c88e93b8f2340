// Package pgserver runs a private PostgreSQL for tests and the simulator:
// its own cluster, initialised into a temporary directory with the
// server binaries of Debian's postgresql package, listening on a free
// loopback port with trust authentication. A fault test can stop, restart
// or kill it without touching the Postgres other people share. Restart
// keeps the port and the data directory, as an operator's restart would.
// As root it runs the server as the postgres OS user (initdb refuses root).
package pgserver
