package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parkgate/parkgate/cloud/postgres"
)

func TestUnreachable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"Nil", nil, false},
		{"UniqueViolation", &pgconn.PgError{Code: "23505"}, false},
		{"Deadlock", fmt.Errorf("hold: %w", &pgconn.PgError{Code: "40P01"}), false},
		{"Canceled", context.Canceled, false},
		{"DeadlineExceeded", fmt.Errorf("hold: %w", context.DeadlineExceeded), false},
		{"Plain", errors.New("boom"), false},
		{"AdminShutdown", fmt.Errorf("hold: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"CannotConnectNow", &pgconn.PgError{Code: "57P03"}, true},
		{"ConnectionFailure", &pgconn.PgError{Code: "08006"}, true},
		{"CutMidStatement", fmt.Errorf("hold: %w", io.ErrUnexpectedEOF), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := postgres.Unreachable(tt.err); got != tt.want {
				t.Errorf("Unreachable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
