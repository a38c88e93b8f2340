package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
)

// markStore answers MarkPublished one group at a time, as the test lets it.
type markStore struct {
	cloud.Outbox
	sent chan []cloud.Mark // each group as it arrives
	let  chan error        // the answer to the group in flight
}

func (s *markStore) MarkPublished(_ context.Context, owner string, _ time.Duration, marks []cloud.Mark) ([]cloud.Marked, error) {
	s.sent <- marks
	if err := <-s.let; err != nil {
		return nil, err
	}
	out := make([]cloud.Marked, len(marks))
	for i, m := range marks {
		out[i] = cloud.Marked{Lags: []float64{float64(m.From)}, Held: owner == "me"}
	}
	return out, nil
}

// TestMarksGrouped: the marks drains make while a group is in flight wait
// for it and then go together, one group at a time; each drain is answered
// with its own mark's result, and a failed group fails each of its marks.
func TestMarksGrouped(t *testing.T) {
	store := &markStore{sent: make(chan []cloud.Mark, 10), let: make(chan error)}
	opts := Options{Owner: "me", LeaseTTL: time.Minute}
	r := &Relay{outbox: store, opts: opts, marks: newMarks(store, opts)}
	type answer struct {
		i   int
		res cloud.Marked
		err error
	}
	answers := make(chan answer, 10)
	var wg sync.WaitGroup
	mark := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.mark(cloud.Mark{LotID: fmt.Sprint("lot-", i), From: int64(i)})
			answers <- answer{i, res, err}
		}()
	}

	mark(0)
	if g := <-store.sent; len(g) != 1 {
		t.Fatalf("first group %v; want the first drain's mark alone", g)
	}
	for i := 1; i <= 5; i++ {
		mark(i)
	}
	// While the first group is in flight nothing else is sent.
	select {
	case g := <-store.sent:
		t.Fatalf("group %v sent while another was in flight", g)
	case <-time.After(100 * time.Millisecond):
	}
	store.let <- nil
	if a := <-answers; a.i != 0 || a.err != nil || a.res.Lags[0] != 0 || !a.res.Held {
		t.Fatalf("first answer %+v; want mark 0's", a)
	}
	if g := <-store.sent; len(g) != 5 {
		t.Fatalf("second group %v; want the 5 marks that waited", g)
	}
	store.let <- nil
	seen := map[int]bool{}
	for range 5 {
		a := <-answers
		if a.err != nil || a.res.Lags[0] != float64(a.i) || !a.res.Held || seen[a.i] {
			t.Fatalf("answer %+v: want mark %d's own lag", a, a.i)
		}
		seen[a.i] = true
	}

	gone := errors.New("database gone")
	mark(6)
	<-store.sent
	mark(7)
	time.Sleep(50 * time.Millisecond) // into the queue behind mark 6
	store.let <- gone
	if g := <-store.sent; len(g) != 1 || g[0].From != 7 {
		t.Fatalf("group %v; want mark 7's", g)
	}
	store.let <- gone
	for range 2 {
		if a := <-answers; !errors.Is(a.err, gone) {
			t.Fatalf("mark %d of a failed group: %v; want the store's error", a.i, a.err)
		}
	}
	wg.Wait()
}

// TestWokenLots: the lots woken for are claimed at most free at a time,
// never one being drained (it stays for the claim after its drain), one
// spelling per lot, and a wake naming no lot (or no uuid) is reported once.
func TestWokenLots(t *testing.T) {
	r := &Relay{wake: make(chan struct{}, 1)}
	a, b, c := "0a000000-0000-4000-8000-000000000001", "0b000000-0000-4000-8000-000000000002", "0c000000-0000-4000-8000-000000000003"
	for _, lot := range []string{a, strings.ToUpper(b), "{" + c + "}", b, "", "lot-7"} {
		r.Wake(lot)
	}
	if !r.wokeUnnamed() || r.wokeUnnamed() {
		t.Fatal("a wake naming no lot is reported once")
	}
	first := r.takeWoken(1, []string{b})
	second := r.takeWoken(5, []string{b})
	if len(first) != 1 || len(second) != 1 || first[0] == second[0] || first[0] == b || second[0] == b {
		t.Fatalf("took %v then %v; want a and c, one at a time, not b (busy)", first, second)
	}
	if got := r.takeWoken(5, nil); len(got) != 1 || got[0] != b {
		t.Fatalf("took %v once b's drain ended; want b, once", got)
	}
	r.rewake(c)
	if got := r.takeWoken(5, nil); len(got) != 1 || got[0] != c {
		t.Fatalf("after rewake: %v", got)
	}
}
