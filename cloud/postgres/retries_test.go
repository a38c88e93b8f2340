package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/postgres"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

// due makes every refusal of id due again, as if its backoff had passed.
func due(t *testing.T, s *pgtest.Schema, id string) {
	t.Helper()
	if _, err := s.DB.Pool.Exec(context.Background(), `UPDATE provider_retries SET retry_at = now() - interval '1 second' WHERE reservation_id = $1`, id); err != nil {
		t.Fatal(err)
	}
}

// TestDeferProviderWork: each refusal holds the reservation back twice as
// long as the one before, from a minute to at most an hour, in its own
// queue only; PurgeProviderRetries forgets refusals a day old and keeps the
// rest.
func TestDeferProviderWork(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	ctx := context.Background()
	lot := eurLot(t, s, "Defer", "1", "2")
	start := time.Now().Add(time.Hour).Truncate(time.Minute)
	id := held(t, s, lot, "defer-1", start)
	other := held(t, s, lot, "defer-2", start.Add(2*time.Hour))

	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i, m := range want {
		if i > 0 { // the row came due, was asked again, and refused again
			due(t, s, id)
		}
		before := time.Now()
		at, attempts, err := s.DB.DeferProviderWork(ctx, cloud.WorkCloseSession, id, fmt.Sprintf("refusal %d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		backoff := m * time.Minute
		if attempts != i+1 || at.Before(before.Add(backoff-5*time.Second)) || at.After(time.Now().Add(backoff+5*time.Second)) {
			t.Errorf("refusal %d: attempt %d, retry in %s; want attempt %d, in %s", i+1, attempts, time.Until(at).Round(time.Second), i+1, backoff)
		}
	}
	// Another replica's refusal in the same round, the row still held
	// back: the reason changes, the attempts and the backoff do not.
	var until time.Time
	if err := s.DB.Pool.QueryRow(ctx, `SELECT retry_at FROM provider_retries WHERE work = 'close_session' AND reservation_id = $1`, id).Scan(&until); err != nil {
		t.Fatal(err)
	}
	if at, attempts, err := s.DB.DeferProviderWork(ctx, cloud.WorkCloseSession, id, "another replica's"); err != nil || attempts != 8 || !at.Equal(until) {
		t.Errorf("refused again while held back: attempt %d, retry at %s, %v; want 8 and %s unchanged", attempts, at, err, until)
	}
	var reason string
	if err := s.DB.Pool.QueryRow(ctx, `SELECT last_error FROM provider_retries WHERE work = 'close_session' AND reservation_id = $1`, id).Scan(&reason); err != nil || reason != "another replica's" {
		t.Errorf("last_error %q, %v; want the last refusal's", reason, err)
	}
	// A refusal long after the last one came due (its work done
	// meanwhile: an overstay paid, and this its next session) is a first.
	if _, err := s.DB.Pool.Exec(ctx, `UPDATE provider_retries SET retry_at = now() - interval '3 hours' WHERE reservation_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if at, attempts, err := s.DB.DeferProviderWork(ctx, cloud.WorkCloseSession, id, "again"); err != nil || attempts != 1 || time.Until(at) > time.Minute+5*time.Second {
		t.Errorf("refused again after a break: attempt %d, retry in %s, %v; want a first refusal", attempts, time.Until(at).Round(time.Second), err)
	}
	var first time.Time
	if err := s.DB.Pool.QueryRow(ctx, `SELECT first_refused FROM provider_retries WHERE work = 'close_session' AND reservation_id = $1`, id).Scan(&first); err != nil || time.Since(first) > 5*time.Second {
		t.Errorf("first_refused %s ago, %v; want now", time.Since(first).Round(time.Second), err)
	}
	// Another queue's refusal of the same reservation starts afresh.
	if _, attempts, err := s.DB.DeferProviderWork(ctx, cloud.WorkRefund, id, "no"); err != nil || attempts != 1 {
		t.Errorf("refund queue: attempt %d, %v; want 1", attempts, err)
	}
	if _, _, err := s.DB.DeferProviderWork(ctx, cloud.ProviderWork("bogus"), id, "no"); err == nil || !strings.Contains(err.Error(), "check") {
		t.Errorf("unknown work: %v; want the check to refuse it", err)
	}

	if _, _, err := s.DB.DeferProviderWork(ctx, cloud.WorkCloseSession, other, "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Pool.Exec(ctx, `UPDATE provider_retries SET retry_at = now() - interval '25 hours' WHERE reservation_id = $1`, other); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DB.PurgeProviderRetries(ctx); n != 1 || err != nil {
		t.Errorf("PurgeProviderRetries = %d, %v; want the day-old one", n, err)
	}
	var left int
	if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM provider_retries WHERE reservation_id = $1`, id).Scan(&left); err != nil || left != 2 {
		t.Errorf("%d refusals left of %s, %v; want both queues'", left, id, err)
	}
}

// TestLeadProviderWork: one replica leads the provider's work at a time;
// release hands the lead on; a replica whose connection dies loses it with
// the session; another schema's service has a lead of its own.
func TestLeadProviderWork(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 2)
	ctx := context.Background()
	other, err := postgres.OpenService(ctx, s.URL, 2) // a second replica
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	lead := func(db *postgres.DB, who string) (func(), bool) {
		t.Helper()
		release, ok, err := db.LeadProviderWork(ctx)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		// Released at the end too, before the pools close (Close waits
		// for the connection a lead holds), when the test fails first.
		once := sync.OnceFunc(release)
		t.Cleanup(once)
		return once, ok
	}

	releaseA, ok := lead(s.DB, "first")
	if !ok {
		t.Fatal("the first replica to ask did not lead")
	}
	if _, ok := lead(other, "second"); ok {
		t.Fatal("a second replica led while the first did")
	}
	elsewhere := pgtest.New(t, 1)
	releaseElse, ok := lead(elsewhere.DB, "another schema")
	if !ok {
		t.Error("another schema's service waits on this one's lead")
	}
	releaseElse()
	releaseA()
	releaseB, ok := lead(other, "second, after release")
	if !ok {
		t.Fatal("the lead was not handed on at release")
	}

	// The second replica's lead dies with its connection (a crash, a cut).
	var pid int
	if err := s.DB.Pool.QueryRow(ctx, `
		SELECT pid FROM pg_locks
		 WHERE locktype = 'advisory' AND granted AND objsubid = 1
		   AND objid::text::bigint = hashtext('parkgate.provider_work.' || current_schema())::bigint & 4294967295`).Scan(&pid); err != nil {
		t.Fatalf("the leader's backend: %v", err)
	}
	if _, err := s.DB.Pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		release, ok := lead(s.DB, "first, after the leader died")
		if ok {
			release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lead outlived its holder's connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	releaseB() // on a dead connection: closed, not pooled
}
