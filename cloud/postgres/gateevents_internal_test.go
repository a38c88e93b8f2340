package postgres

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parkgate/parkgate/cloud"
)

// TestGateError: what the ingest may retry comes out unavailable, an unknown
// lot not_found, and any other refusal as neither.
func TestGateError(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"Deadlock", &pgconn.PgError{Code: "40P01"}, cloud.EUnavailable},
		{"Serialization", &pgconn.PgError{Code: "40001"}, cloud.EUnavailable},
		{"ConnectionFailure", &pgconn.PgError{Code: "08006"}, cloud.EUnavailable},
		{"AdminShutdown", &pgconn.PgError{Code: "57P01"}, cloud.EUnavailable},
		{"TooManyConnections", &pgconn.PgError{Code: "53300"}, cloud.EUnavailable},
		{"Network", errors.New("connection reset"), cloud.EUnavailable},
		{"UnknownLot", &pgconn.PgError{Code: "23503"}, cloud.ENotFound},
		{"BadText", &pgconn.PgError{Code: "22021"}, cloud.EInternal},
		{"UndefinedTable", &pgconn.PgError{Code: "42P01"}, cloud.EInternal},
	} {
		if got := cloud.ErrorCode(gateError(tt.err, "lot-1", "test")); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
