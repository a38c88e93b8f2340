package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// Page sizes of Changes.
const (
	DefaultChangesLimit = 500
	MaxChangesLimit     = 1000
)

// EdgeTokenPrefix starts every edge token, so a leaked one is recognisable
// (secret scanners, logs) and a request can be refused before a database
// round trip when it does not even look like one.
const EdgeTokenPrefix = "pgedge_"

// edgeTokenLen is the length of an edge token: the prefix and 32 random
// bytes in unpadded URL-safe base64.
var edgeTokenLen = len(EdgeTokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// Store holds the SQL of the edge sync: the catch-up read of a lot's change
// log, edge tokens, the relay's leases and marks, and gate-event ingest. It
// keeps the signing key because every change it hands out must be signed.
type Store struct {
	pool *pgxpool.Pool
	key  ed25519.PrivateKey
}

// NewStore returns a store on pool that signs changes with key.
func NewStore(pool *pgxpool.Pool, key ed25519.PrivateKey) *Store {
	return &Store{pool: pool, key: key}
}

// changeRow is one row of the outbox, the lot's change log.
type changeRow struct {
	seq           int64
	reservationID string
	op            string
	status        string
	plate         string
	startsAt      time.Time
	endsAt        time.Time
}

// change is the signed message for the row. Times go out in UTC, as the
// external contract says; the signature covers instants, so either would do.
func (r *changeRow) change(lotID string, key ed25519.PrivateKey) protocol.ReservationChange {
	c := protocol.ReservationChange{
		V:     protocol.Version,
		LotID: lotID,
		Seq:   r.seq,
		Op:    protocol.Op(r.op),
		Reservation: protocol.Reservation{
			ID:       r.reservationID,
			Plate:    r.plate,
			StartsAt: r.startsAt.UTC(),
			EndsAt:   r.endsAt.UTC(),
			Status:   protocol.Status(r.status),
		},
	}
	c.Sign(key)
	return c
}

// canonicalUUID returns s in Postgres' text form of a uuid, so lot ids the
// store hands out (and signs) read the same whichever way a caller spelled
// them, and false for anything that is not a uuid.
func canonicalUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// One statement, so LastSeq and the rows come from one snapshot: an edge
// that reads LastSeq = n has been handed every change up to n it asked for.
const sqlChanges = `
SELECT l.seq, o.seq, o.reservation_id::text, o.op, o.status, o.plate, o.starts_at, o.ends_at
  FROM lots l
  LEFT JOIN LATERAL (
        SELECT x.seq, x.reservation_id, x.op, x.status, x.plate, x.starts_at, x.ends_at
          FROM outbox x
         WHERE x.lot_id = l.id AND x.seq > $2
         ORDER BY x.seq
         LIMIT $3) o ON true
 WHERE l.id = $1
 ORDER BY o.seq`

// Changes returns the lot's changes after seq after, in seq order, each
// signed, at most limit of them (DefaultChangesLimit when limit <= 0, never
// more than MaxChangesLimit). LastSeq is the lot's newest seq; More says
// further changes wait beyond this page. An unknown lot is a not_found error,
// a negative after an invalid_request.
func (s *Store) Changes(ctx context.Context, lotID string, after int64, limit int) (protocol.ChangesPage, error) {
	lot, ok := canonicalUUID(lotID)
	if !ok {
		return protocol.ChangesPage{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	if after < 0 {
		return protocol.ChangesPage{}, cloud.FieldError("after", "must not be negative")
	}
	if limit <= 0 {
		limit = DefaultChangesLimit
	}
	limit = min(limit, MaxChangesLimit)

	// One row more than asked tells whether another page waits.
	rows, err := s.pool.Query(ctx, sqlChanges, lot, after, limit+1)
	if err != nil {
		return protocol.ChangesPage{}, fmt.Errorf("read changes: %w", err)
	}
	defer rows.Close()
	page := protocol.ChangesPage{LotID: lot, Changes: []protocol.ReservationChange{}}
	found := false
	for rows.Next() {
		found = true
		var (
			seq                   *int64
			id, op, status, plate *string
			startsAt, endsAt      *time.Time
		)
		if err := rows.Scan(&page.LastSeq, &seq, &id, &op, &status, &plate, &startsAt, &endsAt); err != nil {
			return protocol.ChangesPage{}, fmt.Errorf("read changes: %w", err)
		}
		if seq == nil {
			continue // the lot has no changes after after
		}
		if len(page.Changes) == limit {
			page.More = true
			continue
		}
		r := changeRow{seq: *seq, reservationID: *id, op: *op, status: *status, plate: *plate,
			startsAt: *startsAt, endsAt: *endsAt}
		page.Changes = append(page.Changes, r.change(lot, s.key))
	}
	if err := rows.Err(); err != nil {
		return protocol.ChangesPage{}, fmt.Errorf("read changes: %w", err)
	}
	if !found {
		return protocol.ChangesPage{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	return page, nil
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateEdgeToken makes a new credential for the lot's edge agent and
// returns it; only its hash is stored, so this is the one time it can be
// read. Tokens made earlier stay valid until revoked, which is how they are
// rotated. An unknown lot is a not_found error.
func (s *Store) CreateEdgeToken(ctx context.Context, lotID string) (string, error) {
	lot, ok := canonicalUUID(lotID)
	if !ok {
		return "", cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("create edge token: %w", err)
	}
	token := EdgeTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO edge_tokens (token_hash, lot_id) SELECT $1, l.id FROM lots l WHERE l.id = $2`,
		hashToken(token), lot)
	if err != nil {
		return "", fmt.Errorf("create edge token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return "", cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	return token, nil
}

// VerifyEdgeToken reports whether token is a live (not revoked) edge token
// of the lot. The lookup is by the token's SHA-256, so how long it takes
// says nothing about the token's bytes. A malformed token or lot id is
// simply not valid; an error means the answer is unknown.
func (s *Store) VerifyEdgeToken(ctx context.Context, lotID, token string) (bool, error) {
	lot, ok := canonicalUUID(lotID)
	if !ok || len(token) != edgeTokenLen || !strings.HasPrefix(token, EdgeTokenPrefix) {
		return false, nil
	}
	var valid bool
	err := s.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM edge_tokens WHERE token_hash = $1 AND lot_id = $2 AND revoked_at IS NULL)`,
		hashToken(token), lot).Scan(&valid)
	if err != nil {
		return false, fmt.Errorf("verify edge token: %w", err)
	}
	return valid, nil
}

// RevokeEdgeToken makes token invalid for good. A token that is not a live
// token of the lot is a not_found error.
func (s *Store) RevokeEdgeToken(ctx context.Context, lotID, token string) error {
	lot, ok := canonicalUUID(lotID)
	if !ok {
		return cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	tag, err := s.pool.Exec(ctx,
		`UPDATE edge_tokens SET revoked_at = now() WHERE token_hash = $1 AND lot_id = $2 AND revoked_at IS NULL`,
		hashToken(token), lot)
	if err != nil {
		return fmt.Errorf("revoke edge token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return cloud.Errorf(cloud.ENotFound, "no live edge token of lot %q matches", lotID)
	}
	return nil
}

// --- Relay ------------------------------------------------------------------

// sqlClaimLots takes the lease of up to $3 lots with unpublished changes
// that nobody holds (or whose lease ran out: its owner died), oldest backlog
// first so no lot starves. The upsert inserts in lot order so that two
// replicas claiming overlapping sets lock rows in the same order; its WHERE
// re-checks the lease after waiting for a concurrent claim, so a lot goes to
// one owner.
const sqlClaimLots = `
WITH pending AS (
    SELECT o.lot_id
      FROM outbox o
     WHERE o.published_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM relay_leases r WHERE r.lot_id = o.lot_id AND r.expires_at > now())
     GROUP BY o.lot_id
     ORDER BY min(o.created_at)
     LIMIT $3
)
INSERT INTO relay_leases AS r (lot_id, owner, expires_at)
SELECT p.lot_id, $1, now() + $2 * interval '1 millisecond' FROM pending p ORDER BY p.lot_id
ON CONFLICT (lot_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
 WHERE r.expires_at <= now()
RETURNING r.lot_id::text`

func (s *Store) claimLots(ctx context.Context, owner string, ttl time.Duration, max int) ([]string, error) {
	rows, err := s.pool.Query(ctx, sqlClaimLots, owner, ttl.Milliseconds(), max)
	if err != nil {
		return nil, fmt.Errorf("claim lots: %w", err)
	}
	lots, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("claim lots: %w", err)
	}
	return lots, nil
}

// unpublished returns the lot's first unpublished changes in seq order.
// Because every publisher marks only a prefix of what it sent, and a lot's
// rows commit in seq order (the lot row lock orders its writers), these
// form a gap-free run starting at the first change not yet delivered.
func (s *Store) unpublished(ctx context.Context, lotID string, limit int) ([]changeRow, error) {
	rows, err := s.pool.Query(ctx, `
SELECT seq, reservation_id::text, op, status, plate, starts_at, ends_at
  FROM outbox
 WHERE lot_id = $1 AND published_at IS NULL
 ORDER BY seq
 LIMIT $2`, lotID, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (changeRow, error) {
		var r changeRow
		err := row.Scan(&r.seq, &r.reservationID, &r.op, &r.status, &r.plate, &r.startsAt, &r.endsAt)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// markPublished stamps the lot's changes from..to as published and extends
// the lease, in one round trip. It returns how long each marked row waited
// since it was written (by the database's clock, so app clock skew does not
// show up as lag) and whether the lease is still ours. Rows another replica
// marked first are left as they are.
func (s *Store) markPublished(ctx context.Context, lotID, owner string, from, to int64, ttl time.Duration) (lags []float64, held bool, err error) {
	var b pgx.Batch
	b.Queue(`
UPDATE outbox SET published_at = clock_timestamp()
 WHERE lot_id = $1 AND seq BETWEEN $2 AND $3 AND published_at IS NULL
RETURNING extract(epoch FROM published_at - created_at)::float8`, lotID, from, to).
		Query(func(rows pgx.Rows) error {
			var err error
			lags, err = pgx.CollectRows(rows, pgx.RowTo[float64])
			return err
		})
	b.Queue(`UPDATE relay_leases SET expires_at = now() + $3 * interval '1 millisecond' WHERE lot_id = $1 AND owner = $2`,
		lotID, owner, ttl.Milliseconds()).
		Exec(func(tag pgconn.CommandTag) error {
			held = tag.RowsAffected() == 1
			return nil
		})
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, false, fmt.Errorf("mark published: %w", err)
	}
	return lags, held, nil
}

// releaseLease gives a lot back so that any replica woken by its next change
// may take it at once.
func (s *Store) releaseLease(ctx context.Context, lotID, owner string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM relay_leases WHERE lot_id = $1 AND owner = $2`, lotID, owner); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

func (s *Store) releaseLeases(ctx context.Context, owner string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM relay_leases WHERE owner = $1`, owner); err != nil {
		return fmt.Errorf("release leases: %w", err)
	}
	return nil
}

func (s *Store) backlog(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count backlog: %w", err)
	}
	return n, nil
}

// --- Ingest -----------------------------------------------------------------

const sqlInsertGateEvent = `
INSERT INTO gate_events (event_id, lot_id, gate_id, direction, kind, plate, confidence, decision, reason,
                         reservation_id, fuzzy, overstay_minutes, offline, occurred_at, decided_in_us)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (event_id) DO NOTHING`

// sqlTransition moves a reservation of the given lot (an edge may only move
// its own lot's reservations, whatever id it reports) through
// parkgate_change, which locks the lot, checks the status and appends the
// outbox row. No row back: not this lot's, or not in a from status.
const sqlTransition = `
SELECT c.seq
  FROM reservations r
 CROSS JOIN LATERAL parkgate_change(r.id, $3::text[], $4) c
 WHERE r.id = $1 AND r.lot_id = $2`

// ingestOutcome is what storing one gate event did.
type ingestOutcome struct {
	duplicate  bool
	transition string // the status the reservation moved to, or ""
	seq        int64  // the change's seq when it moved
}

// transitionFor says which move, if any, an event asks for: an open at an
// entry checks in a confirmed reservation; an open at an exit completes one
// that is checked in, or confirmed when the entry read was missed — a car
// that is leaving has been inside.
func transitionFor(e *protocol.GateEvent) (from []string, to string) {
	if e.Decision != protocol.DecisionOpen || (e.Kind != "" && e.Kind != protocol.KindDecision) {
		return nil, ""
	}
	if _, ok := canonicalUUID(e.ReservationID); !ok {
		return nil, ""
	}
	switch e.Direction {
	case protocol.DirectionEntry:
		return []string{string(protocol.StatusConfirmed)}, string(protocol.StatusCheckedIn)
	case protocol.DirectionExit:
		return []string{string(protocol.StatusCheckedIn), string(protocol.StatusConfirmed)}, string(protocol.StatusCompleted)
	}
	return nil, ""
}

// ingestEvent stores a validated gate event once by its id and, the first
// time only, applies the reservation move it implies — one transaction, so a
// redelivered event can neither be lost nor move a reservation twice.
func (s *Store) ingestEvent(ctx context.Context, e *protocol.GateEvent) (ingestOutcome, error) {
	var out ingestOutcome
	kind := e.Kind
	if kind == "" {
		kind = protocol.KindDecision
	}
	var resID *string
	if e.ReservationID != "" {
		resID = &e.ReservationID
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = ingestOutcome{}
		tag, err := tx.Exec(ctx, sqlInsertGateEvent,
			e.EventID, e.LotID, e.GateID, e.Direction, kind, e.Plate, e.Confidence, e.Decision, e.Reason,
			resID, e.Fuzzy, e.OverstayMinutes, e.Offline, e.OccurredAt, e.DecidedInUs)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			out.duplicate = true
			return nil
		}
		from, to := transitionFor(e)
		if to == "" {
			return nil
		}
		rows, err := tx.Query(ctx, sqlTransition, e.ReservationID, e.LotID, from, to)
		if err != nil {
			return err
		}
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		if len(seqs) > 0 {
			out.transition, out.seq = to, seqs[0]
		}
		return nil
	})
	if err != nil {
		return ingestOutcome{}, fmt.Errorf("ingest event %s: %w", e.EventID, err)
	}
	return out, nil
}

// upsertGateStatus records a gate's status unless a newer one is stored:
// retained messages are re-sent on every subscribe, and replicas race.
func (s *Store) upsertGateStatus(ctx context.Context, lotID, gateID, state string, syncSeq *int64, at time.Time) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO gate_status AS g (lot_id, gate_id, state, sync_seq, at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (lot_id, gate_id) DO UPDATE
   SET state = excluded.state, sync_seq = excluded.sync_seq, at = excluded.at, received_at = now()
 WHERE g.at <= excluded.at`, lotID, gateID, state, syncSeq, at)
	if err != nil {
		return fmt.Errorf("store gate status: %w", err)
	}
	return nil
}
