package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/parkgate/parkgate/cloud"
)

// Hold makes a hold in one round trip (see parkgate_hold), running the
// whole transaction again when it lost a race the database detected
// (deadlock, serialization failure, exclusion conflict): those are
// concurrency, not answers, and must never reach a client as an error.
func (db *DB) Hold(ctx context.Context, p cloud.HoldParams) (cloud.HoldResult, error) {
	var res cloud.HoldResult
	err := retry(ctx, func() error {
		var err error
		res, err = scanHold(db.Pool.QueryRow(ctx, holdSQL, holdArgs(&p)...))
		return err
	})
	if err != nil {
		return cloud.HoldResult{}, holdError(&p, err)
	}
	return res, nil
}

// Holds makes several holds in one transaction: one round trip and one
// commit for all. A lot's holds take turns on its row anyway, each waiting
// for the previous one's commit to reach the disk; together they wait for
// one. Holds of several lots are made lot by lot in the order of their ids
// (each lot's in the order given), so their row locks are taken in the
// order every statement that locks several lots takes them
// (parkgate_confirm_holds), and two such transactions never wait for each
// other in a cycle. A NoWait hold does not wait for its lot at all
// (HoldLotLocked): the calm lots' batches, whose lots have nothing in common
// but the transaction. If the transaction fails as a whole (a deadlock with
// another statement, a lot that does not exist), each request is made again
// on its own, so one request's failure is never another's.
func (db *DB) Holds(ctx context.Context, ps []cloud.HoldParams) []cloud.HoldOutcome {
	out := make([]cloud.HoldOutcome, len(ps))
	if len(ps) > 1 {
		order := make([]int, len(ps))
		for i := range order {
			order[i] = i
		}
		// Canonical ids in lower-case hex sort as Postgres sorts the uuids.
		slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(ps[a].LotID, ps[b].LotID) })
		// A batch runs as one implicit transaction: one Sync, one commit.
		b := &pgx.Batch{}
		for _, i := range order {
			b.Queue(holdSQL, holdArgs(&ps[i])...).QueryRow(func(row pgx.Row) error {
				var err error
				out[i].HoldResult, err = scanHold(row)
				return err
			})
		}
		if err := db.Pool.SendBatch(ctx, b).Close(); err == nil {
			return out
		}
	}
	for i, p := range ps {
		out[i].HoldResult, out[i].Err = db.Hold(ctx, p)
	}
	return out
}

const holdSQL = `SELECT * FROM parkgate_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`

func holdArgs(p *cloud.HoldParams) []any {
	var key, spot, final any
	if p.Key != "" {
		key = p.Key
	}
	if p.SpotID != "" {
		spot = p.SpotID
	}
	if p.FinalStatus != 0 {
		final = p.FinalStatus
	}
	var token, tokenHash any
	if p.AccessToken != "" {
		token, tokenHash = p.AccessToken, p.AccessTokenHash
	}
	var rate any
	if p.Rate != (cloud.Money{}) {
		rate = p.Rate.Amount
	}
	var sid, surl any
	if p.Session.ID != "" {
		sid, surl = p.Session.ID, p.Session.URL
	}
	return []any{p.ID, p.LotID, spot, p.Plate, p.StartsAt, p.EndsAt, p.HoldTTL, p.Price.Amount, p.Price.Currency,
		key, p.RequestHash, p.Lease, p.ConflictBody, final, token, tokenHash, rate, sid, surl, p.NoWait}
}

func holdError(p *cloud.HoldParams, err error) error {
	if sqlState(err) == codeForeignKeyViolation {
		return cloud.Errorf(cloud.ENotFound, "lot %q not found", p.LotID)
	}
	return fail("hold", err)
}

// scanHold reads parkgate_hold's row, whose columns but the first are
// NULL unless the hold was made.
func scanHold(row pgx.Row) (cloud.HoldResult, error) {
	var outcome string
	var label pgtype.Text
	var exp, created pgtype.Timestamptz
	var seq pgtype.Int8
	if err := row.Scan(&outcome, &label, &exp, &created, &seq); err != nil {
		return cloud.HoldResult{}, err
	}
	return cloud.HoldResult{Outcome: outcome, SpotID: label.String, HoldExpiresAt: exp.Time.UTC(),
		CreatedAt: created.Time.UTC(), Seq: seq.Int64}, nil
}

// retry runs f again (a bounded number of times, with jittered backoff)
// while it fails with a retryable database error.
func retry(ctx context.Context, f func() error) error {
	const attempts = 8
	var err error
	for i := range attempts {
		if err = f(); err == nil || !retryable(err) {
			return err
		}
		d := time.Duration(1+rand.IntN(5<<i)) * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return err
}

// FinishHold stores the payment session on the reservation and the final
// response under its key, in one round trip. Each on its own statement: a
// group commit of the holds finishing together (one statement over
// unnest, two writers) cost parkcloud more CPU per hold than it saved at 16
// clients (bench-binary stand-in mode, alternating runs), since few finish
// in the same instant and every one paid the hand-off to a writer.
//
// It commits without waiting for the WAL flush (synchronous_commit off for
// this transaction only): losing it in a crash loses nothing that matters,
// because the key then stays in flight until its lease ends and the
// client's retry takes over, finds the same Checkout Session through
// Stripe's idempotency, and finishes again. That saves a disk flush on
// every hold.
func (db *DB) FinishHold(ctx context.Context, reservationID, sessionID, sessionURL, key string, status int, body []byte) error {
	b := &pgx.Batch{}
	// A batch outside a transaction runs as one implicit transaction, so
	// the local setting covers exactly the update below.
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	if sessionID == "" {
		// Nothing to add to the reservation, so leave its row alone: any
		// update of it writes a new entry into each of its indexes, the
		// exclusion constraint's among them, since updated_at is indexed.
		b.Queue(`UPDATE idempotency_keys SET response_status = $2, response_body = $3, locked_until = NULL
		 WHERE key = $1`, key, status, body)
	} else {
		b.Queue(`
		WITH r AS (
			UPDATE reservations SET checkout_session_id = $2, checkout_url = $3, updated_at = now()
			 WHERE id = $1)
		UPDATE idempotency_keys SET response_status = $5, response_body = $6, locked_until = NULL
		 WHERE key = $4`,
			reservationID, sessionID, sessionURL, key, status, body)
	}
	if err := db.Pool.SendBatch(ctx, b).Close(); err != nil {
		return fail("finish hold", err)
	}
	return nil
}

// AbandonHold cancels a hold that could not be handed to the payment
// provider and forgets its key, so the spot is free again at once and the
// client's retry with the same key starts afresh.
func (db *DB) AbandonHold(ctx context.Context, reservationID, key string) error {
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT * FROM parkgate_change($1, '{PENDING}', 'CANCELLED')`, reservationID); err != nil {
			return err
		}
		if key != "" {
			if _, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE key = $1`, key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fail("abandon hold", err)
	}
	return nil
}

const reservationColumns = `
	r.id, r.status, r.lot_id, s.label, r.plate, r.starts_at, r.ends_at, r.hold_expires_at,
	r.price_amount, r.currency, coalesce(r.checkout_session_id, ''), coalesce(r.checkout_url, ''),
	coalesce(r.payment_intent_id, ''), coalesce(r.refund_id, ''), r.created_at, r.updated_at,
	r.access_token_hash, r.refund_amount, coalesce(r.refund_status, ''), coalesce(r.extends_id::text, ''),
	r.overstay_minutes, r.overstay_amount, coalesce(r.overstay_status, ''), coalesce(r.overstay_session_id, ''),
	coalesce(r.overstay_url, ''),
	(SELECT coalesce(sum(f.amount) FILTER (WHERE f.status <> 'failed'), 0) FROM refunds f WHERE f.reservation_id = r.id),
	(SELECT coalesce(bool_or(f.status = 'pending'), false) FROM refunds f WHERE f.reservation_id = r.id)`

func scanReservation(row pgx.Row) (cloud.Reservation, error) {
	var r cloud.Reservation
	var sid, surl, refundStatus string
	var refundAmount, overAmount pgtype.Int8
	var overMinutes pgtype.Int4
	var overStatus, overSession, overURL string
	var opRefunded int64
	var opPending bool
	err := row.Scan(&r.ID, &r.Status, &r.LotID, &r.SpotID, &r.Plate, &r.StartsAt, &r.EndsAt, &r.HoldExpiresAt,
		&r.Price.Amount, &r.Price.Currency, &sid, &surl, &r.PaymentIntentID, &r.RefundID, &r.CreatedAt, &r.UpdatedAt,
		&r.AccessTokenHash, &refundAmount, &refundStatus, &r.ExtendsID,
		&overMinutes, &overAmount, &overStatus, &overSession, &overURL, &opRefunded, &opPending)
	if err != nil {
		return r, err
	}
	if overAmount.Valid {
		r.Overstay = &cloud.Overstay{Minutes: int(overMinutes.Int32), Amount: overAmount.Int64,
			Currency: r.Price.Currency, Status: overStatus}
		if overSession != "" {
			r.Overstay.Payment = &cloud.Payment{Provider: "stripe", SessionID: overSession, URL: overURL}
		}
	}
	if refundAmount.Valid {
		r.Refund = &cloud.Refund{Amount: refundAmount.Int64, Currency: r.Price.Currency, Status: refundStatus}
	}
	// An operator's refunds add to a cancellation's: the refund shown is
	// all that was given back, pending while any part of it is.
	if opRefunded > 0 || opPending {
		if r.Refund == nil {
			r.Refund = &cloud.Refund{Currency: r.Price.Currency, Status: cloud.RefundSucceeded}
		}
		r.Refund.Amount += opRefunded
		if opPending {
			r.Refund.Status = cloud.RefundPending
		}
	}
	if sid != "" {
		r.Payment = &cloud.Payment{Provider: "stripe", SessionID: sid, URL: surl}
	}
	for _, t := range []*time.Time{&r.StartsAt, &r.EndsAt, &r.HoldExpiresAt, &r.CreatedAt, &r.UpdatedAt} {
		*t = t.UTC()
	}
	return r, nil
}

// Reservation returns a reservation by id, or a not_found error.
func (db *DB) Reservation(ctx context.Context, id string) (cloud.Reservation, error) {
	if !canonicalize(&id) {
		return cloud.Reservation{}, cloud.Errorf(cloud.ENotFound, "reservation %q not found", id)
	}
	r, err := scanReservation(db.Pool.QueryRow(ctx,
		`SELECT `+reservationColumns+` FROM reservations r JOIN spots s ON s.id = r.spot_id WHERE r.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return cloud.Reservation{}, cloud.Errorf(cloud.ENotFound, "reservation %q not found", id)
	}
	if err != nil {
		return cloud.Reservation{}, fail("get reservation", err)
	}
	return r, nil
}

// ReservationBySession returns the reservation paid through a Checkout
// Session, or a not_found error.
func (db *DB) ReservationBySession(ctx context.Context, sessionID string) (cloud.Reservation, error) {
	r, err := scanReservation(db.Pool.QueryRow(ctx,
		`SELECT `+reservationColumns+` FROM reservations r JOIN spots s ON s.id = r.spot_id
		  WHERE r.checkout_session_id = $1`, sessionID))
	if errors.Is(err, pgx.ErrNoRows) {
		return cloud.Reservation{}, cloud.Errorf(cloud.ENotFound, "no reservation for session %q", sessionID)
	}
	if err != nil {
		return cloud.Reservation{}, fail("get reservation by session", err)
	}
	return r, nil
}

// Change moves a reservation from one of the statuses in from to to, with
// its change-log row, and sets the payment fields given (non-empty ones
// only), in one statement. It reports whether the status changed; a
// reservation in none of from is left alone, which is what makes replays of
// the same event harmless.
func (db *DB) Change(ctx context.Context, id string, from []cloud.Status, to cloud.Status, pay cloud.PaymentFields) (changed bool, lotID string, err error) {
	return db.change(ctx, id, from, to, pay, nil)
}

// ConfirmHold moves a PENDING reservation whose hold still stands at the
// given time to CONFIRMED, recording the payment. When it reports no change
// the reservation was not a standing hold: the caller reads it to find out
// what it was. Concurrent confirmations share one statement and one commit
// (parkgate_confirm_holds), so a burst of payments is not held to one
// commit each.
func (db *DB) ConfirmHold(ctx context.Context, id, paymentIntentID string, at time.Time) (changed bool, lotID string, err error) {
	if !canonicalize(&id) {
		return false, "", nil // no such reservation: one bad id must not fail a shared statement
	}
	res, err := db.confirms.Do(ctx, confirmReq{id: id, intent: paymentIntentID, at: at})
	if err != nil {
		return false, "", fail("confirm reservation "+id, err)
	}
	return res.changed, res.lotID, nil
}

type confirmReq struct {
	id, intent string
	at         time.Time
}

type confirmRes struct {
	changed bool
	lotID   string
}

const confirmSQL = `SELECT id::text, lot_id::text FROM parkgate_confirm_holds($1::uuid[], $2, $3)`

// confirmHolds is the confirmation group's write.
func (db *DB) confirmHolds(ctx context.Context, batch []confirmReq) ([]confirmRes, error) {
	ids := make([]string, len(batch))
	intents := make([]string, len(batch))
	ats := make([]time.Time, len(batch))
	for i, c := range batch {
		ids[i], intents[i], ats[i] = c.id, c.intent, c.at
	}
	var changed map[string]string // reservation → lot
	err := retry(ctx, func() error {
		changed = make(map[string]string, len(batch))
		rows, err := db.Pool.Query(ctx, confirmSQL, ids, intents, ats)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, lot string
			if err := rows.Scan(&id, &lot); err != nil {
				return err
			}
			changed[id] = lot
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make([]confirmRes, len(batch))
	for i, c := range batch {
		key := uuid.MustParse(c.id).String()
		if lot, ok := changed[key]; ok {
			out[i] = confirmRes{changed: true, lotID: lot}
			delete(changed, key) // the same id twice: the second changed nothing
		}
	}
	return out, nil
}

// change is Change, with heldAt (a time.Time, or nil) as the hold condition.
func (db *DB) change(ctx context.Context, id string, from []cloud.Status, to cloud.Status, pay cloud.PaymentFields, heldAt any) (changed bool, lotID string, err error) {
	fromText := make([]string, len(from))
	for i, s := range from {
		fromText[i] = string(s)
	}
	err = retry(ctx, func() error {
		changed, lotID = false, ""
		var lot pgtype.UUID
		var seq pgtype.Int8
		var st pgtype.Text
		err := db.Pool.QueryRow(ctx, `SELECT * FROM parkgate_change($1, $2, $3, $4, $5, $6, $7)`,
			id, fromText, string(to), pay.PaymentIntentID, pay.RefundID, pay.SessionClosed, heldAt).Scan(&lot, &seq, &st)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		changed, lotID = true, uuid.UUID(lot.Bytes).String()
		return nil
	})
	if err != nil {
		return false, "", fail(fmt.Sprintf("change reservation %s to %s", id, to), err)
	}
	return changed, lotID, nil
}

// SetPaymentFields records payment bookkeeping without a status change.
func (db *DB) SetPaymentFields(ctx context.Context, id string, p cloud.PaymentFields) error {
	if p == (cloud.PaymentFields{}) {
		return nil
	}
	_, err := db.Pool.Exec(ctx, `
		UPDATE reservations SET
		       payment_intent_id = coalesce(nullif($2, ''), payment_intent_id),
		       refund_id = coalesce(nullif($3, ''), refund_id),
		       session_closed_at = CASE WHEN $4 THEN coalesce(session_closed_at, now()) ELSE session_closed_at END
		 WHERE id = $1`, id, p.PaymentIntentID, p.RefundID, p.SessionClosed)
	if err != nil {
		return fail("set payment fields", err)
	}
	return nil
}

// ExpireDue ends every PENDING hold whose time is up, a lot at a time,
// each lot's in short transactions of its own (parkgate_expire_lot, up to
// expireBatch holds each), so that no lot waits on another's, and returns
// how many it ended by lot, also when it fails part way: those have
// ended. A lot that fails is left for the next call and the others go on.
// The lots with due holds are found by asking each lot, a probe of its
// PENDING holds' index (reservations_pending_lot_idx) apiece.
func (db *DB) ExpireDue(ctx context.Context) (map[string]int, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT l.id::text FROM lots l
		 WHERE EXISTS (SELECT 1 FROM reservations x
		                WHERE x.lot_id = l.id AND x.status = 'PENDING' AND x.hold_expires_at <= now())
		 ORDER BY l.id`)
	if err != nil {
		return nil, fail("lots with due holds", err)
	}
	lots, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fail("lots with due holds", err)
	}
	ended := map[string]int{}
	var errs []error
	for _, lot := range lots {
		for {
			var n int
			if err := db.Pool.QueryRow(ctx, `SELECT parkgate_expire_lot($1, $2)`, lot, expireBatch).Scan(&n); err != nil {
				errs = append(errs, fail("expire the due holds of lot "+lot, err))
				break
			}
			if n > 0 {
				ended[lot] += n
			}
			if n < expireBatch {
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return ended, errors.Join(errs...)
}

// expireBatch is the most holds one transaction of ExpireDue ends: a lot's
// backlog after an outage ends in turns, its lock free between them.
const expireBatch = 500

// SessionsToClose returns sessions of ended holds not yet expired at
// Stripe, but those it refused lately (DeferProviderWork).
func (db *DB) SessionsToClose(ctx context.Context, limit int) ([]cloud.OpenSession, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT r.id::text, r.checkout_session_id FROM reservations r
		 WHERE r.checkout_session_id IS NOT NULL AND r.session_closed_at IS NULL
		   AND r.status IN ('EXPIRED', 'CANCELLED')
		   AND NOT EXISTS (SELECT 1 FROM provider_retries p
		                    WHERE p.work = 'close_session' AND p.reservation_id = r.id AND p.retry_at > now())
		 ORDER BY r.updated_at LIMIT $1`, limit)
	if err != nil {
		return nil, fail("sessions to close", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[cloud.OpenSession])
	if err != nil {
		return nil, fail("sessions to close", err)
	}
	return out, nil
}
