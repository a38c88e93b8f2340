package guard

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/parkgate/parkgate/cloud"
)

// StoredResponse is the response to an idempotent request, kept so a replay
// answers with the same status and body, byte for byte.
type StoredResponse = cloud.StoredResponse

// Encoding of a StoredResponse: format byte, status (2 bytes big endian),
// uvarint hash length, hash, body. Compact, and the body needs no escaping.
const responseFormat = 1

func encodeResponse(r StoredResponse) []byte {
	b := make([]byte, 0, 3+binary.MaxVarintLen64+len(r.RequestHash)+len(r.Body))
	b = append(b, responseFormat)
	b = binary.BigEndian.AppendUint16(b, uint16(r.Status))
	b = binary.AppendUvarint(b, uint64(len(r.RequestHash)))
	b = append(b, r.RequestHash...)
	return append(b, r.Body...)
}

var errBadResponse = errors.New("guard: malformed stored response")

func decodeResponse(b []byte) (StoredResponse, error) {
	if len(b) < 3 || b[0] != responseFormat {
		return StoredResponse{}, errBadResponse
	}
	r := StoredResponse{Status: int(binary.BigEndian.Uint16(b[1:3]))}
	n, w := binary.Uvarint(b[3:])
	if w <= 0 || n > uint64(len(b)-3-w) {
		return StoredResponse{}, errBadResponse
	}
	rest := b[3+w:]
	r.RequestHash = rest[:n:n]
	r.Body = rest[n:]
	return r, nil
}

// LoadResponse returns the response stored under the idempotency key, and
// false when there is none — or Redis could not say, or held something
// unreadable: then the caller asks Postgres, which is the truth. key should
// carry whatever scopes it (e.g. the client), as the caller's Postgres key
// does.
func (g *Guard) LoadResponse(ctx context.Context, key string) (StoredResponse, bool) {
	var raw []byte
	err := g.call(ctx, func(ctx context.Context) error {
		var err error
		raw, err = g.pipe.Get(ctx, g.idemKey(key)).Bytes()
		return err
	})
	return storedResponse(raw, err)
}

func (g *Guard) idemKey(key string) string { return g.key("idem", key) }

// storedResponse reads the answer to a GET of an idempotency key, and
// counts what it found.
func storedResponse(raw []byte, err error) (StoredResponse, bool) {
	switch {
	case err == nil:
	case isMiss(err):
		cacheLookups.WithLabelValues("idempotency", "miss").Inc()
		return StoredResponse{}, false
	default:
		fallbacks.WithLabelValues(featureIdempotency).Inc()
		return StoredResponse{}, false
	}
	r, err := decodeResponse(raw)
	if err != nil {
		cacheLookups.WithLabelValues("idempotency", "miss").Inc()
		return StoredResponse{}, false
	}
	cacheLookups.WithLabelValues("idempotency", "hit").Inc()
	return r, true
}

// SaveResponse stores r under key for IdempotencyTTL. Call it after the
// Postgres transaction that recorded the response committed. A failure is
// counted and otherwise ignored: the next replay takes the Postgres path.
func (g *Guard) SaveResponse(ctx context.Context, key string, r StoredResponse) {
	// Not cut short by a client that hung up: its retry wants the fast path.
	ctx = context.WithoutCancel(ctx)
	err := g.call(ctx, func(ctx context.Context) error {
		return g.pipe.Set(ctx, g.idemKey(key), encodeResponse(r), g.opts.IdempotencyTTL).Err()
	})
	if err != nil {
		fallbacks.WithLabelValues(featureIdempotency).Inc()
	}
}
