package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
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
// With a Backlog, requests that find a writer busy wake nobody: a
// mistake in who counts as busy (an idle writer counted, say) leaves them
// queued with no writer to take them.
func TestLingerRace(t *testing.T) {
	t.Parallel()
	for _, backlog := range []int{0, 3, 16} {
		t.Run(fmt.Sprint("backlog ", backlog), func(t *testing.T) {
			t.Parallel()
			g := &groupcommit.Group[int, int]{MaxWriters: 2, MaxBatch: 4, Backlog: backlog, Linger: time.Microsecond,
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
		})
	}
}

// TestBacklog: while a writer is busy, a second one starts only once
// Backlog requests wait; until then they wait for the busy one, and go
// together in its next batch. Without a Backlog, the first request to
// find the writer busy starts a second one.
func TestBacklog(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		backlog int
		// requests queued behind the first write when the second write
		// starts, and what it carries
		wantSecond []int
	}{
		{backlog: 0, wantSecond: []int{2}},
		{backlog: 3, wantSecond: []int{2, 3, 4}},
	} {
		t.Run(fmt.Sprint("backlog ", tc.backlog), func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			started := make(chan []int, 8)
			g := &groupcommit.Group[int, int]{MaxWriters: 2, Backlog: tc.backlog,
				Write: func(_ context.Context, batch []int) ([]int, error) {
					started <- slices.Clone(batch)
					<-release
					return batch, nil
				}}
			var wg sync.WaitGroup
			defer func() { close(release); wg.Wait() }()
			do := func(v int) {
				wg.Go(func() {
					if got, err := g.Do(context.Background(), v); err != nil || got != v {
						t.Errorf("Do(%d) = %d, %v", v, got, err)
					}
				})
			}
			wait := func() []int {
				select {
				case b := <-started:
					return b
				case <-time.After(10 * time.Second):
					t.Fatal("no write started in 10s")
					return nil
				}
			}
			noWriteYet := func(queued int) {
				select {
				case b := <-started:
					t.Fatalf("a write of %v started with %d requests queued, under Backlog %d", b, queued, tc.backlog)
				default:
				}
			}
			do(1)
			if first := wait(); !slices.Equal(first, []int{1}) {
				t.Fatalf("first write %v, want [1]", first)
			}
			// All but the last request of the second write are queued one
			// at a time, in order; none may start a write of its own.
			last := len(tc.wantSecond) + 1
			for v := 2; v < last; v++ {
				do(v)
				for deadline := time.Now().Add(10 * time.Second); g.Queued() < v-1; {
					noWriteYet(v - 1)
					if time.Now().After(deadline) {
						t.Fatalf("%d requests queued, want %d", g.Queued(), v-1)
					}
					time.Sleep(time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
				noWriteYet(v - 1)
			}
			do(last)
			if second := wait(); !slices.Equal(second, tc.wantSecond) {
				t.Fatalf("second write %v, want %v", second, tc.wantSecond)
			}
		})
	}
}
