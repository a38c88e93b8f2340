package relay

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/internal/testkit/broker"
	"github.com/parkgate/parkgate/protocol"
)

// ingestRun is a running Ingest and what it reported.
type ingestRun struct {
	tb       testing.TB
	url      string
	clientID string
	stop     func()

	mu      sync.Mutex
	results []ingestResult
}

// startIngest runs an ingest with the given client id and group until the
// test ends or stop is called, and waits until its subscription works.
func startIngest(tb testing.TB, f *fixture, url, clientID, group string) *ingestRun {
	tb.Helper()
	in, err := NewIngest(f.db, MQTTConfig{Brokers: []string{url}, ClientID: clientID},
		IngestOptions{Group: group, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	return runIngest(tb, in, url, true)
}

func runIngest(tb testing.TB, in *Ingest, url string, wait bool) *ingestRun {
	tb.Helper()
	run := &ingestRun{tb: tb, url: url, clientID: in.cfg.ClientID}
	in.onResult = func(r ingestResult) {
		run.mu.Lock()
		run.results = append(run.results, r)
		run.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	run.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("ingest run: %v", err)
		}
	})
	tb.Cleanup(run.stop)
	if wait {
		run.waitReady()
	}
	return run
}

// waitReady publishes probes (events of a lot that does not exist) until the
// ingest reports one: from then on its subscription is in place.
func (r *ingestRun) waitReady() {
	r.tb.Helper()
	c := connectMQTT(r.tb, r.url, uniqueID("probe"), true, nil)
	lot := "probe-" + uuid.NewString()
	deadline := time.Now().Add(15 * time.Second)
	for {
		e := gateEvent(lot, "g", protocol.DirectionEntry, protocol.DecisionDeny, "")
		publishEvent(r.tb, c, e)
		for range 10 {
			if r.count(e.EventID, "rejected") > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			r.tb.Fatal("ingest never received a probe")
		}
	}
}

func (r *ingestRun) count(eventID, outcome string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, res := range r.results {
		if res.eventID == eventID && res.outcome == outcome {
			n++
		}
	}
	return n
}

func (r *ingestRun) find(eventID string) []ingestResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ingestResult
	for _, res := range r.results {
		if res.eventID == eventID {
			out = append(out, res)
		}
	}
	return out
}

// waitOutcome waits until the event has been reported with outcome.
func (r *ingestRun) waitOutcome(eventID, outcome string) {
	r.tb.Helper()
	eventually(r.tb, 15*time.Second, "event "+eventID+" "+outcome, func() bool { return r.count(eventID, outcome) > 0 })
}

func gateEvent(lot, gate, direction, decision, reservationID string) protocol.GateEvent {
	reason := protocol.ReasonValid
	if decision == protocol.DecisionDeny {
		reason = protocol.ReasonNoReservation
	}
	return protocol.GateEvent{
		V: protocol.Version, EventID: uuid.NewString(), Kind: protocol.KindDecision,
		LotID: lot, GateID: gate, Direction: direction, Plate: "AB123C", Confidence: 0.97,
		Decision: decision, Reason: reason, ReservationID: reservationID,
		OccurredAt: time.Now().UTC(), DecidedInUs: 850,
	}
}

// publishEvent signs e with edgeKey, as an edge does, and publishes it on
// its gate's topic.
func publishEvent(tb testing.TB, c mqtt.Client, e protocol.GateEvent) {
	tb.Helper()
	e.Sign(edgeKey)
	b, err := json.Marshal(e)
	if err != nil {
		tb.Fatal(err)
	}
	publishRaw(tb, c, protocol.GateEventsTopic(e.LotID, e.GateID), b, false)
}

func publishRaw(tb testing.TB, c mqtt.Client, topic string, payload []byte, retained bool) {
	tb.Helper()
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("publish to %s: %v", topic, tok.Error())
	}
}

// newIngestID is a client id whose persistent session is dropped from the
// broker when the test ends.
func newIngestID(tb testing.TB, url string) string {
	id := uniqueID("ingest")
	tb.Cleanup(func() { dropSession(url, id) })
	return id
}

func TestIngestTransitions(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot, other := f.lot(), f.lot()
	rIn := f.reservation(lot, protocol.StatusConfirmed, "AB123C", 0)
	rMissed := f.reservation(lot, protocol.StatusConfirmed, "CD456E", 1)
	rOther := f.reservation(other, protocol.StatusConfirmed, "EF789G", 0)
	run := startIngest(t, f, url, newIngestID(t, url), uniqueID("grp"))
	pub := connectMQTT(t, url, uniqueID("edge"), true, nil)

	entry := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, rIn)
	publishEvent(t, pub, entry)
	run.waitOutcome(entry.EventID, "stored")
	if got := f.status(rIn); got != protocol.StatusCheckedIn {
		t.Fatalf("after entry: %s, want CHECKED_IN", got)
	}

	exit := gateEvent(lot, "exit-1", protocol.DirectionExit, protocol.DecisionOpen, rIn)
	missedEntry := gateEvent(lot, "exit-1", protocol.DirectionExit, protocol.DecisionOpen, rMissed)
	foreign := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, rOther)
	notUUID := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, "r-42")
	deny := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionDeny, "")
	for _, e := range []protocol.GateEvent{exit, missedEntry, foreign, notUUID, deny} {
		publishEvent(t, pub, e)
	}
	for _, e := range []protocol.GateEvent{exit, missedEntry, foreign, notUUID, deny} {
		run.waitOutcome(e.EventID, "stored")
	}

	for _, tt := range []struct {
		name, id string
		want     protocol.Status
	}{
		{"ExitAfterEntry", rIn, protocol.StatusCompleted},
		{"ExitWithoutEntry", rMissed, protocol.StatusCompleted},
		{"OtherLotsReservation", rOther, protocol.StatusConfirmed},
	} {
		if got := f.status(tt.id); got != tt.want {
			t.Errorf("%s: status %s, want %s", tt.name, got, tt.want)
		}
	}
	if n := f.queryInt(`SELECT count(*) FROM gate_events WHERE lot_id = $1`, lot); n != 6 {
		t.Errorf("%d gate events stored, want 6", n)
	}
	if got := f.queryString(`SELECT reservation_id FROM gate_events WHERE event_id = $1`, notUUID.EventID); got != "r-42" {
		t.Errorf("stored reservation id %q, want what the edge said", got)
	}
	// The change log got one row per move, with the lot's next seqs; the
	// relay takes it from there.
	type logRow struct {
		seq            int64
		id, op, status string
	}
	rows, err := f.pool.Query(context.Background(),
		`SELECT seq, reservation_id::text, op, status FROM outbox WHERE lot_id = $1 ORDER BY seq`, lot)
	if err != nil {
		t.Fatal(err)
	}
	var log []logRow
	for rows.Next() {
		var r logRow
		if err := rows.Scan(&r.seq, &r.id, &r.op, &r.status); err != nil {
			t.Fatal(err)
		}
		log = append(log, r)
	}
	if len(log) != 3 || log[0] != (logRow{1, rIn, "upsert", string(protocol.StatusCheckedIn)}) ||
		log[1].seq != 2 || log[2].seq != 3 || log[1].op != "delete" || log[2].status != string(protocol.StatusCompleted) {
		t.Errorf("outbox = %+v", log)
	}
	if n := f.queryInt(`SELECT count(*) FROM outbox WHERE lot_id = $1`, other); n != 0 {
		t.Errorf("other lot got %d outbox rows", n)
	}
}

func TestIngestDuplicates(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot := f.lot()
	res := f.reservation(lot, protocol.StatusConfirmed, "AB123C", 0)
	run := startIngest(t, f, url, newIngestID(t, url), uniqueID("grp"))
	pub := connectMQTT(t, url, uniqueID("edge"), true, nil)

	e := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, res)
	for range 3 {
		publishEvent(t, pub, e)
	}
	eventually(t, 15*time.Second, "three deliveries", func() bool { return len(run.find(e.EventID)) == 3 })
	if s, d := run.count(e.EventID, "stored"), run.count(e.EventID, "duplicate"); s != 1 || d != 2 {
		t.Errorf("stored %d, duplicate %d; want 1 and 2", s, d)
	}
	if n := f.queryInt(`SELECT count(*) FROM gate_events WHERE event_id = $1`, e.EventID); n != 1 {
		t.Errorf("%d rows for the event", n)
	}
	if n := f.queryInt(`SELECT count(*) FROM outbox WHERE lot_id = $1`, lot); n != 1 {
		t.Errorf("%d outbox rows, want one transition", n)
	}
	if got := f.status(res); got != protocol.StatusCheckedIn {
		t.Errorf("status %s", got)
	}
}

func TestIngestRejects(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot, other := f.lot(), f.lot()
	run := startIngest(t, f, url, newIngestID(t, url), uniqueID("grp"))
	pub := connectMQTT(t, url, uniqueID("edge"), true, nil)

	mismatch := gateEvent(other, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, "")
	badVersion := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, "")
	badVersion.V = 2
	unknownLot := gateEvent(uuid.NewString(), "entry-1", protocol.DirectionEntry, protocol.DecisionDeny, "")
	mismatch.Sign(edgeKey)
	b, _ := json.Marshal(mismatch)
	publishRaw(t, pub, protocol.GateEventsTopic(lot, "entry-1"), b, false)
	publishEvent(t, pub, badVersion)
	publishEvent(t, pub, unknownLot)
	badJSONTopic := protocol.GateEventsTopic(lot, "bad-json-"+uuid.NewString()[:8])
	publishRaw(t, pub, badJSONTopic, []byte(`{"v":1,"event_id":`), false)

	for _, tt := range []struct {
		name, eventID, reason string
	}{
		{"LotMismatch", mismatch.EventID, "topic_mismatch"},
		{"BadVersion", badVersion.EventID, "invalid"},
		{"UnknownLot", unknownLot.EventID, "unknown_lot"},
	} {
		run.waitOutcome(tt.eventID, "rejected")
		if got := run.find(tt.eventID)[0].reason; got != tt.reason {
			t.Errorf("%s: reason %q, want %q", tt.name, got, tt.reason)
		}
	}
	eventually(t, 10*time.Second, "bad JSON rejected", func() bool {
		run.mu.Lock()
		defer run.mu.Unlock()
		for _, r := range run.results {
			if r.topic == badJSONTopic && r.outcome == "rejected" && r.reason == "bad_json" {
				return true
			}
		}
		return false
	})
	if n := f.queryInt(`SELECT count(*) FROM gate_events`); n != 0 {
		t.Errorf("%d rejected events stored", n)
	}
}

// TestIngestAckAfterCommit stops the ingest while an event's transaction is
// blocked: the message was never acknowledged, so the broker delivers it
// again to the next run of the same client, which stores it.
func TestIngestAckAfterCommit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot := f.lot()
	res := f.reservation(lot, protocol.StatusConfirmed, "AB123C", 0)
	clientID, group := newIngestID(t, url), uniqueID("grp")
	first := startIngest(t, f, url, clientID, group)
	pub := connectMQTT(t, url, uniqueID("edge"), true, nil)

	ctx := context.Background()
	lock, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, `LOCK TABLE gate_events IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	e := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, res)
	publishEvent(t, pub, e)
	eventually(t, 10*time.Second, "ingest blocked on the table lock", func() bool {
		return f.queryInt(`SELECT count(*) FROM pg_locks WHERE relation = 'gate_events'::regclass AND NOT granted`) > 0
	})
	first.stop()
	if got := first.count(e.EventID, "stored"); got != 0 {
		t.Fatalf("stored while the table was locked")
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	second := startIngest(t, f, url, clientID, group)
	second.waitOutcome(e.EventID, "stored")
	if got := f.status(res); got != protocol.StatusCheckedIn {
		t.Errorf("status %s", got)
	}
}

// TestIngestBrokerRestart: events published while the ingest is away are
// kept in its session, across a broker restart, and delivered when it
// returns; it goes on across a restart while it is connected. Mosquitto
// 2.0.11 does not restore shared subscriptions from persistence, so with
// one the test publishes after a restart only once the ingest has
// subscribed again; unshared, it publishes at once.
func TestIngestBrokerRestart(t *testing.T) {
	t.Parallel()
	for _, unshared := range []bool{false, true} {
		name := "Shared"
		if unshared {
			name = "Unshared"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testIngestBrokerRestart(t, unshared)
		})
	}
}

func testIngestBrokerRestart(t *testing.T, unshared bool) {
	f := setup(t)
	b := broker.Start(t)
	lot := f.lot()
	var res []string
	for i := range 20 {
		res = append(res, f.reservation(lot, protocol.StatusConfirmed, "AB123C", i))
	}
	clientID := uniqueID("ingest")
	start := func(wait bool) *ingestRun {
		in, err := NewIngest(f.db, MQTTConfig{Brokers: []string{b.URL()}, ClientID: clientID},
			IngestOptions{Group: "parkcloud", Unshared: unshared, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return runIngest(t, in, b.URL(), wait)
	}
	run := start(true)
	pub := connectMQTT(t, b.URL(), uniqueID("edge"), true, nil)

	var events []protocol.GateEvent
	send := func(c mqtt.Client, from, to int) {
		for _, r := range res[from:to] {
			e := gateEvent(lot, "entry-1", protocol.DirectionEntry, protocol.DecisionOpen, r)
			publishEvent(t, c, e)
			events = append(events, e)
		}
	}
	send(pub, 0, 5)
	for _, e := range events {
		run.waitOutcome(e.EventID, "stored")
	}

	run.stop()
	send(pub, 5, 10) // queued in the ingest's session while it is away
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	pub = connectMQTT(t, b.URL(), uniqueID("edge"), true, nil)
	if unshared {
		send(pub, 10, 12) // before the ingest is back
	}
	run = start(!unshared)
	if unshared {
		send(pub, 12, 15)
	} else {
		send(pub, 10, 15)
	}
	if err := b.Restart(); err != nil { // once more with the ingest connected
		t.Fatal(err)
	}
	pub = connectMQTT(t, b.URL(), uniqueID("edge"), true, nil)
	if !unshared {
		run.waitReady()
	}
	send(pub, 15, 20)

	eventually(t, 20*time.Second, "all events stored", func() bool {
		return f.queryInt(`SELECT count(*) FROM gate_events WHERE lot_id = $1`, lot) == 20
	})
	if n := f.queryInt(`SELECT count(*) FROM reservations WHERE lot_id = $1 AND status = 'CHECKED_IN'`, lot); n != 20 {
		t.Errorf("%d reservations checked in, want 20", n)
	}
	if n := f.queryInt(`SELECT count(*) FROM outbox WHERE lot_id = $1`, lot); n != 20 {
		t.Errorf("%d outbox rows, want 20", n)
	}
}

func TestIngestGateStatus(t *testing.T) {
	t.Parallel()
	f := setup(t)
	url := sharedBrokerURL()
	lot := f.lot()
	startIngest(t, f, url, newIngestID(t, url), uniqueID("grp"))
	pub := connectMQTT(t, url, uniqueID("edge"), true, nil)
	topic := protocol.GateStatusTopic(lot, "entry-1")
	t.Cleanup(func() { pub.Publish(topic, 1, true, []byte{}).WaitTimeout(time.Second) }) // clear the retained message

	at := time.Now().UTC().Truncate(time.Millisecond)
	online, _ := json.Marshal(protocol.GateStatus{V: 1, LotID: lot, GateID: "entry-1", State: protocol.StateOnline, SyncSeq: 42, At: at})
	publishRaw(t, pub, topic, online, true)
	eventually(t, 10*time.Second, "status stored", func() bool {
		return f.queryInt(`SELECT count(*) FROM gate_status WHERE lot_id = $1 AND state = 'online' AND sync_seq = 42`, lot) == 1
	})
	// An older online (a late copy) must not win; an older offline that
	// arrives live is a last will, whose at is the agent's connect time,
	// and does (TestEdgeAlertsFromLastWill).
	stale, _ := json.Marshal(protocol.GateStatus{V: 1, LotID: lot, GateID: "entry-1", State: protocol.StateOnline, SyncSeq: 7, At: at.Add(-time.Minute)})
	publishRaw(t, pub, topic, stale, true)
	offline, _ := json.Marshal(protocol.GateStatus{V: 1, LotID: lot, GateID: "entry-1", State: protocol.StateOffline, At: at.Add(time.Minute)})
	publishRaw(t, pub, topic, offline, true)
	eventually(t, 10*time.Second, "offline stored", func() bool {
		return f.queryString(`SELECT state FROM gate_status WHERE lot_id = $1`, lot) == protocol.StateOffline
	})
	if seq := f.queryInt(`SELECT sync_seq FROM gate_status WHERE lot_id = $1`, lot); seq != 42 {
		t.Errorf("applied seq %d: the older online won, or offline forgot it", seq)
	}
}

func TestTransitionFor(t *testing.T) {
	t.Parallel()
	id := uuid.NewString()
	tests := []struct {
		name                          string
		direction, decision, kind, id string
		want                          string
	}{
		{"EntryOpen", "entry", "open", "decision", id, string(protocol.StatusCheckedIn)},
		{"EntryOpenNoKind", "entry", "open", "", id, string(protocol.StatusCheckedIn)},
		{"ExitOpen", "exit", "open", "decision", id, string(protocol.StatusCompleted)},
		{"EntryDeny", "entry", "deny", "decision", id, ""},
		{"Override", "entry", "open", protocol.KindOverride, id, ""},
		{"NoReservation", "entry", "open", "decision", "", ""},
		{"NotUUID", "exit", "open", "decision", "r-1", ""},
	}
	for _, tt := range tests {
		e := protocol.GateEvent{Direction: tt.direction, Decision: tt.decision, Kind: tt.kind, ReservationID: tt.id}
		if got := transitionFor(&e).To; got != cloud.Status(tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
