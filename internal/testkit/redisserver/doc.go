// Package redisserver runs a private redis-server for tests and the
// simulator on a free loopback port, in its own directory, so a fault test
// can restart or kill it without touching the Redis other people share.
// Restart keeps the port; the cloud keeps nothing in Redis it cannot lose
// (caches and rate-limit counters), so no persistence is configured.
package redisserver
