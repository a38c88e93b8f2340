package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/parkgate/parkgate/cloud"
)

// CreateLot stores a lot and its spots in one transaction and returns it
// with its new id.
func (db *DB) CreateLot(ctx context.Context, lot cloud.Lot) (cloud.Lot, error) {
	lot.ID = uuid.NewString()
	lot.TotalSpots = len(lot.Spots)
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO lots (id, name, latitude, longitude, time_zone, hourly_rate_amount, currency, total_spots,
			                  free_cancellation, exit_grace)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			RETURNING created_at`,
			lot.ID, lot.Name, lot.Latitude, lot.Longitude, lot.TimeZone,
			lot.HourlyRate.Amount, lot.HourlyRate.Currency, lot.TotalSpots,
			time.Duration(lot.FreeCancellation), time.Duration(lot.ExitGrace),
		).Scan(&lot.CreatedAt)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO spots (lot_id, label) SELECT $1, unnest($2::text[])`, lot.ID, lot.Spots)
		return err
	})
	if err != nil {
		if sqlState(err) == codeUniqueViolation {
			return cloud.Lot{}, cloud.FieldError("spots", "spot labels must be unique")
		}
		return cloud.Lot{}, fail("create lot", err)
	}
	lot.CreatedAt = lot.CreatedAt.UTC()
	return lot, nil
}

// Lot returns a lot without its spot list, or a not_found error.
func (db *DB) Lot(ctx context.Context, id string) (cloud.Lot, error) {
	if !canonicalize(&id) {
		return cloud.Lot{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", id)
	}
	l, err := scanLot(db.Pool.QueryRow(ctx, `SELECT `+lotColumns+` FROM lots WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return cloud.Lot{}, cloud.Errorf(cloud.ENotFound, "lot %q not found", id)
	}
	if err != nil {
		return cloud.Lot{}, fail("get lot", err)
	}
	return l, nil
}

// lotColumns are a lot's columns as scanLot reads them. Intervals as
// microseconds: a lot's policies are Go durations, and an interval of days
// or months has no one length in Go.
const lotColumns = `id, name, latitude, longitude, time_zone, hourly_rate_amount, currency, total_spots, created_at,
	(extract(epoch FROM free_cancellation) * 1000000)::bigint,
	(extract(epoch FROM exit_grace) * 1000000)::bigint,
	closed, denied_alert_count, (extract(epoch FROM denied_alert_window) * 1000000)::bigint`

func scanLot(row pgx.Row) (cloud.Lot, error) {
	var l cloud.Lot
	var freeUS, graceUS, windowUS int64
	err := row.Scan(&l.ID, &l.Name, &l.Latitude, &l.Longitude, &l.TimeZone,
		&l.HourlyRate.Amount, &l.HourlyRate.Currency, &l.TotalSpots, &l.CreatedAt, &freeUS, &graceUS,
		&l.Closed, &l.DeniedAlert.Count, &windowUS)
	us := func(n int64) cloud.Duration { return cloud.Duration(time.Duration(n) * time.Microsecond) }
	l.FreeCancellation, l.ExitGrace, l.DeniedAlert.Window = us(freeUS), us(graceUS), us(windowUS)
	l.CreatedAt = l.CreatedAt.UTC()
	return l, err
}

// takenSpots counts the spots of lot l that an active reservation holds at
// some instant of [$start, $end). A PENDING hold whose time is up holds
// nothing even before the expiry worker marks it, as in parkgate_hold.
const takenSpots = `(
	SELECT count(DISTINCT r.spot_id) FROM reservations r
	 WHERE r.lot_id = l.id
	   AND r.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN')
	   AND tstzrange(r.starts_at, r.ends_at) && tstzrange($1, $2)
	   AND NOT (r.status = 'PENDING' AND r.hold_expires_at <= now()))`

// availableSpots is how many spots of lot l are free for the whole of
// [$1, $2): none while its operator has it closed, since no hold is taken
// then (the closed lot stays in search results, shown full, so a driver
// who knows it finds it and sees why).
const availableSpots = `CASE WHEN l.closed THEN 0 ELSE l.total_spots - ` + takenSpots + ` END`

// Availability returns how many of a lot's spots are free for the whole of
// [start, end), and how many it has.
func (db *DB) Availability(ctx context.Context, lotID string, start, end time.Time) (available, total int, err error) {
	if !canonicalize(&lotID) {
		return 0, 0, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	err = db.Pool.QueryRow(ctx, `SELECT `+availableSpots+`, l.total_spots FROM lots l WHERE l.id = $3`,
		start, end, lotID).Scan(&available, &total)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, cloud.Errorf(cloud.ENotFound, "lot %q not found", lotID)
	}
	if err != nil {
		return 0, 0, fail("availability", err)
	}
	return available, total, nil
}

// SearchLots returns the lots within radiusM metres of (lat, lng), nearest
// first, at most limit, with their availability over [start, end). A
// bounding box on the indexed coordinates narrows the candidates before the
// exact great-circle distance is computed. The box wraps at ±180°: a box
// around 179.999° reaches over to -179.999° (its shifted copies), and the
// haversine is periodic in longitude already.
func (db *DB) SearchLots(ctx context.Context, lat, lng, radiusM float64, start, end time.Time, limit int) ([]cloud.LotMatch, error) {
	const metresPerDegree = 111_320.0
	dLat := radiusM / metresPerDegree
	cosLat := math.Cos(lat * math.Pi / 180)
	dLng := 180.0
	if cosLat > 0.01 {
		dLng = math.Min(180, radiusM/(metresPerDegree*cosLat))
	}
	select {
	case db.searches <- struct{}{}:
		defer func() { <-db.searches }()
	case <-ctx.Done():
		return nil, fmt.Errorf("search lots: waiting for a turn: %w", ctx.Err())
	}
	// Availability, the costly part, is counted in the outer query: only
	// for lots within the radius (not the corners of the box) and, with
	// the sort key not depending on it, only for those within the limit.
	rows, err := db.Pool.Query(ctx, `
		SELECT l.id, l.name, l.latitude, l.longitude, l.time_zone, l.hourly_rate_amount, l.currency,
		       l.total_spots, l.created_at, l.distance_m, `+availableSpots+` AS available
		  FROM (
			SELECT l.id, l.name, l.latitude, l.longitude, l.time_zone, l.hourly_rate_amount, l.currency,
			       l.total_spots, l.created_at, l.closed,
			       2 * 6371008.8 * asin(sqrt(
			           power(sin(radians(l.latitude - $3) / 2), 2) +
			           cos(radians($3)) * cos(radians(l.latitude)) *
			           power(sin(radians(l.longitude - $4) / 2), 2))) AS distance_m
			  FROM lots l
			 WHERE l.latitude BETWEEN $3 - $6 AND $3 + $6
			   AND (l.longitude BETWEEN $4 - $7 AND $4 + $7
			        OR l.longitude BETWEEN $4 - $7 + 360 AND $4 + $7 + 360
			        OR l.longitude BETWEEN $4 - $7 - 360 AND $4 + $7 - 360)
		) l
		WHERE l.distance_m <= $5
		ORDER BY l.distance_m
		LIMIT $8`,
		start, end, lat, lng, radiusM, dLat, dLng, limit)
	if err != nil {
		return nil, fail("search lots", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cloud.LotMatch, error) {
		var m cloud.LotMatch
		l := &m.Lot
		err := r.Scan(&l.ID, &l.Name, &l.Latitude, &l.Longitude, &l.TimeZone, &l.HourlyRate.Amount,
			&l.HourlyRate.Currency, &l.TotalSpots, &l.CreatedAt, &m.DistanceM, &m.Available)
		return m, err
	})
	if err != nil {
		return nil, fail("search lots", err)
	}
	return out, nil
}

// LotsNamed implements cloud.LotStore: the driver's page finds a lot by
// its name. strpos rather than LIKE, so a "%" or "_" in what the driver
// typed is a character, not a pattern. A scan of lots: their names are
// short and their number is a city's, not a country's; a trigram index
// is the next step if that changes.
func (db *DB) LotsNamed(ctx context.Context, name string, start, end time.Time, limit int) ([]cloud.LotMatch, error) {
	select {
	case db.searches <- struct{}{}:
		defer func() { <-db.searches }()
	case <-ctx.Done():
		return nil, fmt.Errorf("lots named: waiting for a turn: %w", ctx.Err())
	}
	rows, err := db.Pool.Query(ctx, `
		SELECT l.id, l.name, l.latitude, l.longitude, l.time_zone, l.hourly_rate_amount, l.currency,
		       l.total_spots, l.created_at, `+availableSpots+` AS available
		  FROM (SELECT * FROM lots l WHERE strpos(lower(l.name), lower($3)) > 0
		         ORDER BY lower(l.name), l.id LIMIT $4) l
		 ORDER BY lower(l.name), l.id`,
		start, end, name, limit)
	if err != nil {
		return nil, fail("lots named", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cloud.LotMatch, error) {
		var m cloud.LotMatch
		l := &m.Lot
		err := r.Scan(&l.ID, &l.Name, &l.Latitude, &l.Longitude, &l.TimeZone, &l.HourlyRate.Amount,
			&l.HourlyRate.Currency, &l.TotalSpots, &l.CreatedAt, &m.Available)
		return m, err
	})
	if err != nil {
		return nil, fail("lots named", err)
	}
	return out, nil
}
