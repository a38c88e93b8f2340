package bus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Message is one verified payment event.
type Message struct {
	// ID is the Stripe event id. It is unique per event: a backend that can
	// (Postgres) records an ID once, and handlers treat a second delivery of
	// an ID as already done.
	ID string
	// Key orders messages: those with one Key are handled one at a time, in
	// the order they were published. It is the reservation id, or the
	// Checkout Session id when the reservation is not known.
	Key string
	// Type is the Stripe event type, e.g. "checkout.session.completed".
	Type string
	// Payload is the raw verified event JSON, delivered byte for byte.
	Payload []byte
	// CreatedAt is when Stripe created the event. Postgres orders one key's
	// events by it (then by arrival); the zero time means "now".
	CreatedAt time.Time
}

// Validate reports whether m can be published: an ID and a Key are required,
// since without them neither deduplication nor ordering is possible.
func (m Message) Validate() error {
	switch {
	case m.ID == "":
		return errors.New("bus: message has no id")
	case m.Key == "":
		return fmt.Errorf("bus: message %s has no key", m.ID)
	}
	return nil
}

// Publisher records messages for later handling.
type Publisher interface {
	// Publish returns nil only once m is durable: committed in Postgres, or
	// acknowledged by all in-sync Kafka replicas. Only then may the webhook
	// answer Stripe 2xx. duplicate reports that m.ID was already recorded and
	// m was not recorded again; backends that cannot tell (Kafka) always
	// report false and may deliver the ID twice. On error m may or may not
	// have been recorded; publishing it again is safe.
	Publish(ctx context.Context, m Message) (duplicate bool, err error)
}

// Handler acts on one message. It returns nil when the message is done; any
// error makes the bus deliver the message again later, after a bounded
// exponential backoff, and holds back later messages of the same key until
// it succeeds (on Kafka, those of every key sharing its partition too). A
// message is never skipped, so a handler should return nil for a message it
// can never act on (say, an event type it does not know) and report that
// otherwise. A handler may see a message more than once (after a crash, a
// lost lease, a rebalance, or a duplicate publish), so it must be
// idempotent. ctx is cancelled when the consumer stops or loses the
// message; the handler should then return promptly, and the message is
// delivered again.
type Handler func(ctx context.Context, m Message) error

// Consumer delivers published messages to a Handler.
type Consumer interface {
	// Run hands messages to h, concurrently for different keys and one at a
	// time, in publish order, for each key. (Postgres orders one key's
	// waiting messages by CreatedAt first, then by publish order, so that
	// an older Stripe event delivered late still goes before newer ones
	// not yet handled.) It blocks until ctx is done,
	// waits for handlers in flight to return (their ctx is cancelled too),
	// and returns nil. It returns an error only when it cannot consume at
	// all, such as a configuration the backend rejects. Several Runs may be
	// active at once, in one process or many: each is one consumer, and they
	// share the work.
	Run(ctx context.Context, h Handler) error
}

// Backend names a bus implementation, as chosen by configuration.
type Backend string

// The backends. Postgres needs nothing beyond the database the service
// already has; Kafka is for when webhook volume outgrows it.
const (
	BackendPostgres Backend = "postgres"
	BackendKafka    Backend = "kafka"
)

// EnvBackend is the environment variable that selects the backend.
const EnvBackend = "PARKGATE_BUS"

// ParseBackend returns the backend named by s, BackendPostgres for "".
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(strings.ToLower(strings.TrimSpace(s))); b {
	case "":
		return BackendPostgres, nil
	case BackendPostgres, BackendKafka:
		return b, nil
	}
	return "", fmt.Errorf("bus: unknown backend %q (want %q or %q)", s, BackendPostgres, BackendKafka)
}

// String returns the backend's name.
func (b Backend) String() string { return string(b) }

// Set parses s into b, so that a Backend can be a flag.Value.
func (b *Backend) Set(s string) error {
	v, err := ParseBackend(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Backoff is the wait before a failed message is handled again: Min after
// the first failure, doubling with each further one up to Max, with jitter
// so that replicas retrying one outage do not hit the database in step.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff suits handlers whose failures are outages of the database
// or of Stripe: retry soon, then settle at a few minutes.
var DefaultBackoff = Backoff{Min: time.Second, Max: 5 * time.Minute}

// Delay returns the wait after the given failure (1 for the first), between
// half and all of min(Min·2^(failure-1), Max). A zero Backoff is
// DefaultBackoff.
func (b Backoff) Delay(failure int) time.Duration {
	if b.Min <= 0 {
		b.Min = DefaultBackoff.Min
	}
	if b.Max <= 0 {
		b.Max = max(b.Min, DefaultBackoff.Max)
	}
	b.Max = max(b.Max, b.Min)
	d := b.Max
	if failure < 1 {
		failure = 1
	}
	if failure <= 32 {
		if e := b.Min << (failure - 1); e > 0 && e < b.Max {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}
