package cloud

import (
	"context"
	"time"
)

// StoredResponse is a response kept under an idempotency key, so a replay
// answers with the same status and body, byte for byte.
type StoredResponse struct {
	// RequestHash identifies the request the key was first used with: a
	// replay with another request is idempotency_key_reused, not a replay.
	RequestHash []byte
	Status      int
	Body        []byte
}

// Guard is the hot-lot guard (Redis): a lock that cuts contention, a fast
// path for idempotent replays and an availability cache to keep right. Each
// call degrades to a no-op when it is away; correctness never depends on it.
type Guard interface {
	// Lock takes the lot's lock for the windows [start, end) spans and
	// returns its release; an error when it is busy past its wait or away.
	Lock(ctx context.Context, lotID string, start, end time.Time) (release func(), err error)
	// SaveResponse stores r under key, after the store committed it.
	SaveResponse(ctx context.Context, key string, r StoredResponse)
	// InvalidateLot forgets the cached availability of the lots.
	InvalidateLot(ctx context.Context, lotIDs ...string)
	// Peek reads, in one round trip, the response stored under key (ok
	// false when there is none or the guard cannot say) and, when
	// availability is true, whether the availability cache knows the
	// window to be full, with a function that records the window full (nil
	// without). The function remembers the cache's state now, so a change
	// committed before it is called leaves the record unreachable rather
	// than wrong.
	Peek(ctx context.Context, key, lotID string, start, end time.Time, availability bool) (stored StoredResponse, ok, full bool, markFull func(total int))
}

// Limiter is the distributed rate limiter, falling back to a local one
// when the shared one is away.
type Limiter interface {
	// AllowLot reports whether one more hold of the lot may go ahead, and
	// otherwise when to come back.
	AllowLot(ctx context.Context, lotID string) (ok bool, retryAfter time.Duration)
	// AllowClient reports whether one more request of the client may go
	// ahead, and otherwise when to come back.
	AllowClient(ctx context.Context, clientID string) (ok bool, retryAfter time.Duration)
}

// AvailabilityCache keeps availability answers.
type AvailabilityCache interface {
	// CachedAvailability returns a cached answer (ok), or a function that
	// stores the answer the caller then computes. The function remembers
	// the cache's state before the computation, so that a change committed
	// in between leaves the stored answer unreachable rather than stale.
	CachedAvailability(ctx context.Context, lotID string, start, end time.Time) (available, total int, ok bool, store func(available, total int))
}

// Admission is what Admitter.Admit found.
type Admission struct {
	// Stored is the response stored under the key, when Replay.
	Stored StoredResponse
	Replay bool
	// Full and MarkFull are Peek's.
	Full     bool
	MarkFull func(total int)
	// Asked is true when the rate limits were asked: nothing was stored
	// and the window was not known full. Then Allowed says whether both
	// allowed the request, and RetryAfter when to come back if not.
	Asked      bool
	Allowed    bool
	RetryAfter time.Duration
}

// Admitter is a Guard that also asks a client's and a lot's rate limits
// (as the Limiter it is) in the round trip of its Peek: and only when that
// finds neither a stored response nor the window full, so a replay and a
// full lot's 409 cost no limit; the lot's only when the client's allows.
// When Asked is false the caller asks the limits itself, if it needs them.
//
// Leased lets a request through on tokens of both limits that this replica
// leased from them ahead of use (Admit asks a limit for a few at once when
// its burst allows), spending one of each, with no round trip at all; it
// reports false, spending none, when it lacks a token of either. A request
// let through so has spent its tokens before anyone knows whether it is a
// replay or finds the window full: on that path those cost a token (and
// are never refused for it).
type Admitter interface {
	Admit(ctx context.Context, key, lotID string, start, end time.Time, availability bool, clientID string) Admission
	Leased(lotID, clientID string) bool
}

// KeyedResponse is a response to store under an idempotency key.
type KeyedResponse struct {
	Key string
	StoredResponse
}

// BatchFinisher is a Guard that invalidates a lot and stores the
// responses of the holds that changed it in one round trip.
type BatchFinisher interface {
	// InvalidateSaving is InvalidateLot(lotID), when invalidate, and
	// SaveResponse of each of saves, together.
	InvalidateSaving(ctx context.Context, lotID string, invalidate bool, saves []KeyedResponse)
}
