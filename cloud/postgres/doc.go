// Package postgres is the authoritative store of the reservation service, on
// pgx: DB implements cloud.Store and the edge-sync ports (cloud.Outbox,
// cloud.ChangeLog, cloud.EdgeTokens, cloud.GateEventStore). Migrations are
// numbered SQL files embedded in the binary and applied under an advisory
// lock, so replicas starting together apply each once; they hold only schema
// changes. Each PL/pgSQL function has one current source file in functions/,
// re-applied on every migrate (see DB.Migrate). The SQL of each noun lives in
// one file (lots.go, reservations.go, outbox.go, edgetokens.go, gateevents.go,
// audit.go); the hot paths, making a hold, confirming holds and changing a
// status, are functions (parkgate_hold, parkgate_confirm_holds,
// parkgate_change) so that each is one round trip and takes its locks in one
// fixed order: lot row first. The store answers in cloud error codes:
// not_found for a missing row, and an error wrapping cloud.ErrStoreUnavailable
// when the database cannot be reached, so no caller looks at a pgx error.
package postgres
