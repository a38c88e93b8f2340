package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parkgate/parkgate/cloud"
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

// TestFailSpeaksCloudCodes: an outage leaves the store as the unavailable
// code the API answers 503 with; any other failure stays internal.
func TestFailSpeaksCloudCodes(t *testing.T) {
	t.Parallel()
	down := postgres.Fail("get lot", &pgconn.PgError{Code: "57P01"})
	if !errors.Is(down, cloud.ErrStoreUnavailable) || cloud.ErrorCode(down) != cloud.EUnavailable ||
		cloud.ErrorMessage(down) != cloud.ErrStoreUnavailable.Message {
		t.Errorf("outage: %v (code %s)", down, cloud.ErrorCode(down))
	}
	var pe *pgconn.PgError
	if !errors.As(down, &pe) {
		t.Error("outage: the driver's error is no longer in the chain")
	}
	refused := postgres.Fail("get lot", &pgconn.PgError{Code: "23505"})
	if errors.Is(refused, cloud.ErrStoreUnavailable) || cloud.ErrorCode(refused) != cloud.EInternal {
		t.Errorf("refused statement: %v (code %s)", refused, cloud.ErrorCode(refused))
	}
}
