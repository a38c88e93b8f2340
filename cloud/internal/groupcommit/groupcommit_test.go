package groupcommit_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
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

// goid is the calling goroutine's number, from its stack header.
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

// TestWritersLinger: a writer with nothing to do waits for the next
// request (it keeps the stack it grew) and ends once Linger has passed
// with none. Not parallel: it counts the process's goroutines.
func TestWritersLinger(t *testing.T) {
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	writers := map[string]bool{}
	g := &groupcommit.Group[int, int]{MaxWriters: 1, Linger: 200 * time.Millisecond,
		Write: func(_ context.Context, batch []int) ([]int, error) {
			mu.Lock()
			writers[goid()] = true
			mu.Unlock()
			return batch, nil
		}}
	for i := range 5 {
		if v, err := g.Do(context.Background(), i); err != nil || v != i {
			t.Fatalf("Do(%d) = %d, %v", i, v, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(writers) != 1 {
		t.Errorf("5 requests apart, within Linger, were written by %d goroutines, want 1", len(writers))
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines %v after Linger, %d before", runtime.NumGoroutine(), 10*time.Second, base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLingerRace: writers ending as requests arrive, over and over; every
// request is answered (a lost wake-up would leave a caller waiting).
func TestLingerRace(t *testing.T) {
	t.Parallel()
	g := &groupcommit.Group[int, int]{MaxWriters: 2, Linger: time.Microsecond,
		Write: func(_ context.Context, batch []int) ([]int, error) { return batch, nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				if i%50 == 0 {
					time.Sleep(time.Duration(c) * time.Microsecond) // let writers time out
				}
				if v, err := g.Do(ctx, i); err != nil || v != i {
					t.Errorf("Do(%d) = %d, %v", i, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
