package httpapi

import (
	"net/http"
	"time"
)

// Limits are the HTTP server's timeouts and header bound. They are fields,
// not constants, so tests can use short ones; zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included: a client that
	// trickles a body a byte a second is cut off, not waited for.
	Read time.Duration
	// Idle closes a keep-alive connection with no request in flight.
	Idle time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
}

// DefaultLimits are the contract's: a 10 s request (and body) deadline, a
// 60 s idle timeout and 16 KiB of headers. A gate computer has few
// connections to give; a camera's request is a few hundred bytes.
func DefaultLimits() Limits {
	return Limits{ReadHeader: 5 * time.Second, Read: 10 * time.Second, Idle: 60 * time.Second, MaxHeaderBytes: 16 << 10}
}

// headerSlack is what net/http's server reads past MaxHeaderBytes.
const headerSlack = 4096

// NewServer returns an http.Server for h with the limits applied.
func NewServer(h http.Handler, l Limits) *http.Server {
	d := DefaultLimits()
	if l.ReadHeader <= 0 {
		l.ReadHeader = d.ReadHeader
	}
	if l.Read <= 0 {
		l.Read = d.Read
	}
	if l.ReadHeader > l.Read {
		l.ReadHeader = l.Read
	}
	if l.Idle <= 0 {
		l.Idle = d.Idle
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	// net/http reads up to MaxHeaderBytes plus 4 KiB of slack before it
	// refuses; take the slack off so the bound is the one promised.
	maxHeader := l.MaxHeaderBytes
	if maxHeader > 2*headerSlack {
		maxHeader -= headerSlack
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeader,
		ReadTimeout:       l.Read,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    maxHeader,
	}
}
