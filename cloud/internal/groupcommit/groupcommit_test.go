package groupcommit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
)

// TestAnswersAndBatches: every caller gets the answer to its own request;
// callers that arrive while a write is in flight share the next one.
func TestAnswersAndBatches(t *testing.T) {
	t.Parallel()
	var writes, biggest atomic.Int64
	g := &groupcommit.Group[int, int]{MaxWriters: 1, Write: func(_ context.Context, batch []int) ([]int, error) {
		writes.Add(1)
		if n := int64(len(batch)); n > biggest.Load() {
			biggest.Store(n)
		}
		time.Sleep(2 * time.Millisecond) // a commit
		out := make([]int, len(batch))
		for i, v := range batch {
			out[i] = v * 10
		}
		return out, nil
	}}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			got, err := g.Do(context.Background(), i)
			if err != nil || got != i*10 {
				t.Errorf("Do(%d) = %d, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	if writes.Load() >= 200 || biggest.Load() < 2 {
		t.Fatalf("%d writes for 200 requests, the biggest of %d: nothing was shared", writes.Load(), biggest.Load())
	}
}

// TestErrorsAndCancel: a failed write fails each of its requests; a caller
// whose context ends stops waiting.
func TestErrorsAndCancel(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	release := make(chan struct{})
	g := &groupcommit.Group[int, int]{Write: func(_ context.Context, batch []int) ([]int, error) {
		<-release
		return nil, boom
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := g.Do(ctx, 1); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	go func() { _, err := g.Do(context.Background(), 2); done <- err }()
	close(release)
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("failed write: %v", err)
	}
}
