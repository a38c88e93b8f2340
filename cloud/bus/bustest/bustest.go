package bustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/bus"
)

// Bus is a backend under test.
type Bus struct {
	Publisher bus.Publisher
	// NewConsumer returns a consumer; each call stands for one more replica.
	// Consumers of one Bus share its work (one Postgres table, one Kafka
	// consumer group).
	NewConsumer func() bus.Consumer
	// RecordsOnce says the backend records an ID once: Publish reports
	// duplicates, and a duplicate is not delivered again. Backends without
	// it (Kafka) must report duplicate=false and may deliver an ID twice.
	RecordsOnce bool
}

// WaitTimeout bounds every wait of the suite. It is generous so that a slow
// machine under -race does not fail a correct backend; a passing run takes
// a small fraction of it.
var WaitTimeout = 30 * time.Second

// Exercise runs the contract suite. newBus must return a bus of its own
// (its own schema, its own cluster or topic and group) for each subtest,
// configured with short backoffs and poll intervals (tens of milliseconds)
// so that redeliveries come quickly.
func Exercise(t *testing.T, newBus func(t *testing.T) Bus) {
	t.Helper()

	t.Run("DeliversEveryMessage", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		r := newRecorder()
		const keys, perKey = 20, 10
		msgs := r.messages(keys, perKey)
		// Half the keys wait in the backlog before any consumer starts, the
		// other half arrive while three consumers run.
		publishByKey(t, b.Publisher, msgs[:keys/2])
		for i := range 3 {
			start(t, b.NewConsumer(), r.handler(fmt.Sprint("c", i), nil))
		}
		publishByKey(t, b.Publisher, msgs[keys/2:])
		r.waitFor(t, "every message handled", func() bool { return len(r.succeeded) == keys*perKey })
		r.check(t)
	})

	t.Run("PerKeyOrder", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		r := newRecorder()
		const keys, perKey = 3, 30
		msgs := r.messages(keys, perKey)
		work := func(ctx context.Context, m bus.Message, call int) error {
			// Uneven handling times give another consumer every chance to
			// overtake, if the backend would let it.
			time.Sleep(time.Duration(rand.N(2000)) * time.Microsecond)
			return nil
		}
		for i := range 3 {
			start(t, b.NewConsumer(), r.handler(fmt.Sprint("c", i), work))
		}
		publishByKey(t, b.Publisher, msgs)
		r.waitFor(t, "every message handled", func() bool { return len(r.succeeded) == keys*perKey })
		r.check(t)
	})

	t.Run("RedeliversAfterHandlerError", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		r := newRecorder()
		const keys, perKey, failures = 4, 5, 2
		msgs := r.messages(keys, perKey)
		flaky := func(ctx context.Context, m bus.Message, call int) error {
			if r.sent[m.ID].n%2 == 0 && call <= failures {
				return fmt.Errorf("transient failure %d", call)
			}
			return nil
		}
		for i := range 2 {
			start(t, b.NewConsumer(), r.handler(fmt.Sprint("c", i), flaky))
		}
		publishByKey(t, b.Publisher, msgs)
		r.waitFor(t, "every message handled", func() bool { return len(r.succeeded) == keys*perKey })
		r.check(t)
		r.mu.Lock()
		defer r.mu.Unlock()
		for id, s := range r.sent {
			if s.n%2 == 0 && r.calls[id] < failures+1 {
				t.Errorf("%s handled %d times, want at least %d (it failed %d times)", id, r.calls[id], failures+1, failures)
			}
		}
	})

	t.Run("RedeliversAfterConsumerStops", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		r := newRecorder()
		msgs := r.messages(1, 5)[0]
		stuck := msgs[2].ID
		started := make(chan struct{})
		var once sync.Once
		// The first consumer gets stuck in the middle of one message, as a
		// replica does when it is shut down or killed mid-event.
		block := func(ctx context.Context, m bus.Message, call int) error {
			if m.ID != stuck {
				return nil
			}
			once.Do(func() { close(started) })
			<-ctx.Done()
			return ctx.Err()
		}
		a := start(t, b.NewConsumer(), r.handler("a", block))
		publishByKey(t, b.Publisher, [][]bus.Message{msgs})
		select {
		case <-started:
		case <-time.After(WaitTimeout):
			t.Fatalf("consumer a never started %s", stuck)
		}
		a.stop(t)
		if n := r.successes(stuck); n != 0 {
			t.Fatalf("%s succeeded %d times in the stopped consumer", stuck, n)
		}
		start(t, b.NewConsumer(), r.handler("b", nil))
		r.waitFor(t, "every message handled", func() bool { return len(r.succeeded) == len(msgs) })
		if n := r.successes(stuck); n != 1 {
			t.Errorf("%s succeeded %d times, want 1", stuck, n)
		}
		r.check(t)
	})

	t.Run("DuplicatePublish", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		r := newRecorder()
		msgs := r.messages(1, 2)[0]
		dup, sentinel := msgs[0], msgs[1]
		ctx := context.Background()
		var got []bool
		for _, m := range []bus.Message{dup, dup, sentinel} {
			d, err := b.Publisher.Publish(ctx, m)
			if err != nil {
				t.Fatalf("publish %s: %v", m.ID, err)
			}
			got = append(got, d)
		}
		want := []bool{false, b.RecordsOnce, false}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("duplicate flags = %v, want %v", got, want)
		}
		start(t, b.NewConsumer(), r.handler("c", nil))
		// The sentinel comes after both copies in its key's order, so once
		// it is done every copy that will be delivered has been.
		r.waitFor(t, "sentinel handled", func() bool { return r.succeeded[sentinel.ID] > 0 })
		n := r.successes(dup.ID)
		if b.RecordsOnce && n != 1 {
			t.Errorf("%s handled %d times, want 1: the backend records an id once", dup.ID, n)
		}
		if n < 1 {
			t.Errorf("%s never handled", dup.ID)
		}
		r.check(t)
	})

	t.Run("RunReturnsWhenContextDone", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		r := newRecorder()
		var cs []*running
		for i := range 2 {
			cs = append(cs, start(t, b.NewConsumer(), r.handler(fmt.Sprint("c", i), nil)))
		}
		for _, c := range cs {
			c.stop(t)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- b.NewConsumer().Run(ctx, r.handler("late", nil)) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run with a cancelled context = %v, want nil", err)
			}
		case <-time.After(WaitTimeout):
			t.Fatal("Run with a cancelled context did not return")
		}
	})

	t.Run("PublishRejectsInvalidMessage", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		for _, m := range []bus.Message{{Key: "k", Payload: []byte(`{}`)}, {ID: "evt_nokey", Payload: []byte(`{}`)}} {
			if _, err := b.Publisher.Publish(context.Background(), m); err == nil {
				t.Errorf("Publish(%+v) = nil error, want one", m)
			}
		}
	})
}

// sentMsg is what the suite knows of a message it published.
type sentMsg struct {
	key     string
	n       int // position among its key's messages
	payload []byte
}

// event is one entry of the recorder's log: a handler call starting, or
// finishing with or without success.
type event struct {
	consumer string
	id       string
	start    bool
	ok       bool
	payload  []byte
}

// recorder logs every handler call in the order it happened and lets tests
// wait for a condition on what it saw.
type recorder struct {
	sent map[string]sentMsg // written before publishing, read-only after

	mu        sync.Mutex
	log       []event
	calls     map[string]int
	succeeded map[string]int
	changed   chan struct{}
}

func newRecorder() *recorder {
	return &recorder{
		sent:      map[string]sentMsg{},
		calls:     map[string]int{},
		succeeded: map[string]int{},
		changed:   make(chan struct{}),
	}
}

// messages makes perKey messages for each of keys keys. Creation times are
// non-decreasing per key, three to a second as Stripe's one-second
// timestamps often are, so a backend that orders by creation time must
// break ties by arrival.
func (r *recorder) messages(keys, perKey int) [][]bus.Message {
	base := time.Now().Truncate(time.Second).Add(-time.Hour)
	suffix := rand.Uint32()
	out := make([][]bus.Message, keys)
	for k := range keys {
		key := fmt.Sprintf("res_%08x_%02d", suffix, k)
		for n := range perKey {
			id := fmt.Sprintf("evt_%08x_%02d_%03d", suffix, k, n)
			m := bus.Message{
				ID:        id,
				Key:       key,
				Type:      "checkout.session.completed",
				Payload:   fmt.Appendf(nil, `{"id":%q,"object":"event","key":%q,"n":%d}`, id, key, n),
				CreatedAt: base.Add(time.Duration(n/3) * time.Second),
			}
			r.sent[id] = sentMsg{key: key, n: n, payload: m.Payload}
			out[k] = append(out[k], m)
		}
	}
	return out
}

// handler returns a Handler that logs each call around fn (nil: succeed).
// fn gets the number of this call for the message, counting from 1.
func (r *recorder) handler(consumer string, fn func(ctx context.Context, m bus.Message, call int) error) bus.Handler {
	return func(ctx context.Context, m bus.Message) error {
		r.mu.Lock()
		r.calls[m.ID]++
		call := r.calls[m.ID]
		r.appendLocked(event{consumer: consumer, id: m.ID, start: true, payload: bytes.Clone(m.Payload)})
		r.mu.Unlock()

		var err error
		if fn != nil {
			err = fn(ctx, m, call)
		}

		r.mu.Lock()
		if err == nil {
			r.succeeded[m.ID]++
		}
		r.appendLocked(event{consumer: consumer, id: m.ID, ok: err == nil})
		r.mu.Unlock()
		return err
	}
}

func (r *recorder) appendLocked(e event) {
	r.log = append(r.log, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) successes(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.succeeded[id]
}

// waitFor blocks until cond, evaluated under the recorder's lock after each
// handler event, holds, and fails the test after WaitTimeout.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(WaitTimeout)
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		done := len(r.succeeded)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("waited %v for %s; %d messages succeeded so far", WaitTimeout, what, done)
		}
	}
}

// check verifies the whole log against the contract: every delivery
// carried the published payload; a message was never started before all
// earlier messages of its key had succeeded; two messages of one key were
// never in a handler at once.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	done := map[string]map[int]bool{} // key → positions that succeeded
	inFlight := map[string]string{}   // key → id in a handler
	perConsumer := map[string]int{}
	for _, e := range r.log {
		if e.start {
			perConsumer[e.consumer]++
		}
		s, ok := r.sent[e.id]
		if !ok {
			t.Errorf("handler got %s, which was never published", e.id)
			continue
		}
		if !e.start {
			delete(inFlight, s.key)
			if e.ok {
				if done[s.key] == nil {
					done[s.key] = map[int]bool{}
				}
				done[s.key][s.n] = true
			}
			continue
		}
		if !bytes.Equal(e.payload, s.payload) {
			t.Errorf("%s delivered with payload %q, published %q", e.id, e.payload, s.payload)
		}
		if other, busy := inFlight[s.key]; busy {
			t.Errorf("%s started (consumer %s) while %s of the same key was still being handled", e.id, e.consumer, other)
		}
		inFlight[s.key] = e.id
		for n := range s.n {
			if !done[s.key][n] {
				t.Errorf("%s (position %d of key %s) started before position %d succeeded", e.id, s.n, s.key, n)
				break
			}
		}
	}
	t.Logf("handler calls by consumer: %v", perConsumer)
}

// publishByKey publishes each key's messages in order, the keys
// concurrently, as concurrent webhook requests do.
func publishByKey(t *testing.T, p bus.Publisher, byKey [][]bus.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(byKey))
	for _, msgs := range byKey {
		wg.Go(func() {
			for _, m := range msgs {
				if dup, err := p.Publish(ctx, m); err != nil {
					errs <- fmt.Errorf("publish %s: %w", m.ID, err)
					return
				} else if dup {
					errs <- fmt.Errorf("publish %s: reported a duplicate of a new id", m.ID)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// running is a consumer's Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start runs c with h until stop or the end of the test.
func start(t *testing.T, c bus.Consumer, h bus.Handler) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx, h) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the consumer's context and waits for Run to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(WaitTimeout):
			r.err = errors.New("Run did not return after its context was cancelled")
		}
		if r.err != nil {
			t.Errorf("consumer: %v", r.err)
		}
	})
}
