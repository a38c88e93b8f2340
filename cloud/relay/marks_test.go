package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// markStore answers MarkPublished, one group at a time as the test lets it.
type markStore struct {
	cloud.Outbox
	mu     sync.Mutex
	groups [][]cloud.Mark
	sent   chan int      // the size of each group as it arrives
	let    chan struct{} // one receive per group answered
	fail   error
}

func (s *markStore) MarkPublished(_ context.Context, owner string, _ time.Duration, marks []cloud.Mark) ([]cloud.Marked, error) {
	s.mu.Lock()
	s.groups = append(s.groups, marks)
	s.mu.Unlock()
	s.sent <- len(marks)
	<-s.let
	if s.fail != nil {
		return nil, s.fail
	}
	out := make([]cloud.Marked, len(marks))
	for i, m := range marks {
		out[i] = cloud.Marked{Lags: []float64{float64(m.From)}, Held: owner == "me"}
	}
	return out, nil
}

func (s *markStore) queued(r *Relay) int {
	r.marks.mu.Lock()
	defer r.marks.mu.Unlock()
	return len(r.marks.queue)
}

// TestMarksGrouped: marks made while one is in flight go together in the
// next round trip, each answered with its own result; the drain that sent
// a group is answered as soon as it is, not after the groups behind it; and
// a failed group fails each of its marks.
func TestMarksGrouped(t *testing.T) {
	store := &markStore{sent: make(chan int, 10), let: make(chan struct{})}
	r := &Relay{outbox: store, opts: Options{Owner: "me", LeaseTTL: time.Minute}}
	type answer struct {
		i   int
		res cloud.Marked
		err error
	}
	answers := make(chan answer, 10)
	mark := func(i int) {
		res, err := r.mark(cloud.Mark{LotID: fmt.Sprint("lot-", i), From: int64(i)})
		answers <- answer{i, res, err}
	}

	go mark(0)
	if n := <-store.sent; n != 1 {
		t.Fatalf("first group of %d marks; want the first drain's alone", n)
	}
	for i := 1; i <= 5; i++ {
		go mark(i)
	}
	eventually(t, 5*time.Second, "five marks queued behind the one in flight", func() bool { return store.queued(r) == 5 })
	store.let <- struct{}{}
	if a := <-answers; a.i != 0 || a.err != nil || a.res.Lags[0] != 0 || !a.res.Held {
		t.Fatalf("first answer %+v; want mark 0's", a)
	}
	if n := <-store.sent; n != 5 {
		t.Fatalf("second group of %d marks; want the 5 queued", n)
	}
	// The first drain was answered while the second group is in flight.
	store.let <- struct{}{}
	seen := map[int]bool{}
	for range 5 {
		a := <-answers
		if a.err != nil || a.res.Lags[0] != float64(a.i) || !a.res.Held || seen[a.i] {
			t.Fatalf("answer %+v: want mark %d's own lag", a, a.i)
		}
		seen[a.i] = true
	}

	// Nothing in flight: the next mark goes at once, on its own.
	store.fail = errors.New("database gone")
	go mark(6)
	if n := <-store.sent; n != 1 {
		t.Fatalf("group of %d after a quiet spell; want 1", n)
	}
	go mark(7)
	eventually(t, 5*time.Second, "a mark queued", func() bool { return store.queued(r) == 1 })
	store.let <- struct{}{}
	<-store.sent
	store.let <- struct{}{}
	for range 2 {
		if a := <-answers; !errors.Is(a.err, store.fail) {
			t.Fatalf("mark %d of a failed group: %v; want the store's error", a.i, a.err)
		}
	}
	if store.queued(r) != 0 || r.marks.flying {
		t.Fatal("marks left queued or in flight")
	}
}
