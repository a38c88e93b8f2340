// Package postgres is the authoritative store of the reservation service, on
// pgx. Migrations are numbered SQL files embedded in the binary and applied
// under an advisory lock, so replicas starting together apply each once. The
// SQL of each noun lives in one file (lots.go, reservations.go, outbox.go …);
// the two hot paths, making a hold and changing a status, are plpgsql
// functions (parkgate_hold, parkgate_change) so that each is one round trip
// and takes its locks in one fixed order: lot row first. Migrations hold only
// schema changes; each function has one current source file in functions/,
// re-applied on every migrate (see DB.Migrate).
package postgres
