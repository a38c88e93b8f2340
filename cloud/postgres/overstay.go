package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/parkgate/parkgate/cloud"
)

// sqlOverstay marks an exit's overstay due, in the gate event's own
// transaction, once per reservation: an exit (of this lot's reservation)
// later than its ends_at plus the lot's exit_grace. Minutes count from
// ends_at, rounded up; the grace only decides whether there is an overstay.
// It returns the minutes and the lot's rate as they are at the exit, which
// is what the overstay is priced at (see priceOverstay).
const sqlOverstay = `
UPDATE reservations r
   SET overstay_exit_at = $3, overstay_status = 'due', updated_at = now(),
       overstay_minutes = least(ceil(extract(epoch FROM ($3 - r.ends_at)) / 60), 1000000000)::integer
  FROM lots l
 WHERE r.id = $1 AND r.lot_id = $2 AND l.id = r.lot_id AND r.extends_id IS NULL
   AND r.overstay_status IS NULL AND $3 > r.ends_at + l.exit_grace
RETURNING r.overstay_minutes, l.hourly_rate_amount, l.currency`

// sqlPriceOverstay sets the amount of the overstay sqlOverstay just marked;
// nothing to pay (a free lot) settles it at once. Pricing is what raises
// reservation.overstayed (sqlOverstayedAlert), here as in PriceOverstay: the
// exit's transaction prices nearly every overstay, and PriceOverstay then
// finds it priced and raises nothing, so without the alert here none was
// ever sent.
const sqlPriceOverstay = `
WITH priced AS (
    UPDATE reservations
       SET overstay_amount = $2::bigint, overstay_status = CASE WHEN $2::bigint = 0 THEN 'paid' ELSE overstay_status END
     WHERE id = $1 AND overstay_amount IS NULL
    RETURNING id, lot_id, plate, ends_at, overstay_exit_at, overstay_minutes, overstay_amount, currency)
` + sqlOverstayedAlert

// sqlOverstayedAlert raises reservation.overstayed for the rows of a CTE
// named priced, the reservations whose overstay was just priced.
const sqlOverstayedAlert = `
SELECT parkgate_alert('reservation.overstayed', jsonb_build_object(
           'reservation_id', id, 'lot_id', lot_id, 'plate', plate, 'ends_at', parkgate_rfc3339(ends_at),
           'exit_at', parkgate_rfc3339(overstay_exit_at), 'minutes', overstay_minutes,
           'amount', overstay_amount, 'currency', currency))
  FROM priced`

// markOverstay marks and prices an exit's overstay inside the gate event's
// transaction tx, so the reservation shows it, with its amount, as soon as
// the exit is stored; the worker then only opens its Checkout Session. The
// price is cloud.OverstayPrice (the one pricing rule) of the rate at the
// exit, set once: a second exit read finds the overstay marked and
// changes nothing. An amount too large to price is left unset, for the
// worker to report, rather than refusing the exit's event.
func markOverstay(ctx context.Context, tx pgx.Tx, reservationID, lotID string, at time.Time) error {
	var minutes int
	var rate cloud.Money
	err := tx.QueryRow(ctx, sqlOverstay, reservationID, lotID, at).Scan(&minutes, &rate.Amount, &rate.Currency)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // on time, not this lot's, or marked before
	}
	if err != nil {
		return err
	}
	price, err := cloud.OverstayPrice(rate, minutes)
	if err != nil {
		return nil
	}
	_, err = tx.Exec(ctx, sqlPriceOverstay, reservationID, price.Amount)
	return err
}

// DueOverstays returns overstays to price or to hand to the provider, but
// those it refused lately (DeferProviderWork).
func (db *DB) DueOverstays(ctx context.Context, limit int) ([]cloud.DueOverstay, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT r.id::text, r.lot_id::text, r.overstay_minutes, r.overstay_amount, coalesce(r.overstay_session_id, ''),
		       r.overstay_sessions
		  FROM reservations r
		 WHERE r.overstay_status = 'due' AND (r.overstay_amount IS NULL OR r.overstay_session_id IS NULL)
		   AND NOT EXISTS (SELECT 1 FROM provider_retries p
		                    WHERE p.work = 'overstay_session' AND p.reservation_id = r.id AND p.retry_at > now())
		 ORDER BY r.overstay_exit_at LIMIT $1`, limit)
	if err != nil {
		return nil, fail("due overstays", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cloud.DueOverstay, error) {
		var d cloud.DueOverstay
		var amount pgtype.Int8
		err := r.Scan(&d.ReservationID, &d.LotID, &d.Minutes, &amount, &d.SessionID, &d.Sessions)
		if amount.Valid {
			d.Amount = &amount.Int64
		}
		return d, err
	})
	if err != nil {
		return nil, fail("due overstays", err)
	}
	return out, nil
}

// PriceOverstay sets the amount once; the first time, with the
// reservation.overstayed alert in the same transaction. The exit's own
// transaction prices (and alerts) every overstay it can; this prices what
// it could not.
func (db *DB) PriceOverstay(ctx context.Context, reservationID string, amount int64) (int64, error) {
	var got int64
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var before pgtype.Int8
		err := tx.QueryRow(ctx, `SELECT overstay_amount FROM reservations WHERE id = $1 AND overstay_status IS NOT NULL FOR UPDATE`,
			reservationID).Scan(&before)
		if err != nil {
			return err
		}
		if before.Valid {
			got = before.Int64
			return nil
		}
		got = amount
		_, err = tx.Exec(ctx, `
			WITH priced AS (
			    UPDATE reservations SET overstay_amount = $2, updated_at = now() WHERE id = $1
			    RETURNING id, lot_id, plate, ends_at, overstay_exit_at, overstay_minutes, overstay_amount, currency)
			`+sqlOverstayedAlert, reservationID, amount)
		return err
	})
	if err != nil {
		return 0, fail("price overstay", err)
	}
	return got, nil
}

// SetOverstaySession records the session, or with none marks it paid.
func (db *DB) SetOverstaySession(ctx context.Context, reservationID, sessionID, url string) error {
	var err error
	if sessionID == "" {
		_, err = db.Pool.Exec(ctx, `UPDATE reservations SET overstay_status = 'paid', updated_at = now()
			 WHERE id = $1 AND overstay_status = 'due'`, reservationID)
	} else {
		_, err = db.Pool.Exec(ctx, `UPDATE reservations SET overstay_session_id = $2, overstay_url = $3, updated_at = now()
			 WHERE id = $1 AND overstay_session_id IS NULL`, reservationID, sessionID, url)
	}
	if err != nil {
		return fail("set overstay session", err)
	}
	return nil
}

// OverstaySessionExpired forgets the expired session of a due overstay.
func (db *DB) OverstaySessionExpired(ctx context.Context, reservationID, sessionID string) (bool, error) {
	tag, err := db.Pool.Exec(ctx, `
		UPDATE reservations SET overstay_session_id = NULL, overstay_url = NULL,
		       overstay_sessions = overstay_sessions + 1, updated_at = now()
		 WHERE id = $1 AND overstay_session_id = $2 AND overstay_status = 'due'`, reservationID, sessionID)
	if err != nil {
		return false, fail("overstay session expired", err)
	}
	return tag.RowsAffected() == 1, nil
}

// OverstayPaid marks the overstay paid through sessionID.
func (db *DB) OverstayPaid(ctx context.Context, reservationID, sessionID, paymentIntentID string) (bool, error) {
	tag, err := db.Pool.Exec(ctx, `
		UPDATE reservations SET overstay_status = 'paid', updated_at = now(),
		       overstay_payment_intent = coalesce(nullif($3, ''), overstay_payment_intent)
		 WHERE id = $1 AND overstay_session_id = $2`, reservationID, sessionID, paymentIntentID)
	if err != nil {
		return false, fail("overstay paid", err)
	}
	return tag.RowsAffected() == 1, nil
}
