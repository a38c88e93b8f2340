package relay

// The ingest consumes what the gates report. Gate events arrive through a
// shared subscription (the broker hands each to one replica); each is stored
// once by its event id, and an open at a gate moves its reservation to
// CHECKED_IN or COMPLETED in the same transaction, with the outbox row, so
// the edge hears of it like any other change. The MQTT message is
// acknowledged only after that commit: a crash redelivers rather than loses.
// Only events signed by a key registered for their lot are applied; the
// rest are counted (reason bad_signature) and dropped, because a broker
// without ACL lets anyone publish on a gate's topic. The gates' retained
// status (online, offline, applied seq) is recorded too.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// GateStatusFilter matches every gate's retained status topic.
const GateStatusFilter = protocol.Root + "/lots/+/gates/+/status"

// IngestOptions tune an Ingest; zero values take the defaults.
type IngestOptions struct {
	// Group is the shared-subscription group of the cloud replicas
	// (default "parkcloud"); the broker hands each event to one member.
	Group string
	// Unshared subscribes every replica to every event instead; the
	// database still keeps each once, at the cost of one conflicting
	// insert per extra replica. Two behaviours of Mosquitto 2.0.11 (seen
	// here) make it the safer choice there: it does not restore shared
	// subscriptions from its persistence file, so after a broker restart
	// events published before a replica has subscribed again are dropped
	// (an edge that reconnects first and drains its outbox loses them);
	// and it deals shared messages round-robin to offline members with a
	// persistent session too, so a replica that is gone (or renamed) holds
	// its share of events until it returns with the same client id.
	Unshared bool
	// Workers bounds the transactions in progress at once (default 16).
	// The broker's in-flight window for the client (Mosquitto's
	// max_inflight_messages, 20 by default) bounds it too, because a
	// message is acknowledged only after its commit.
	Workers int
	// SkipStatus turns off recording the gates' retained status.
	SkipStatus bool
	Logger     *slog.Logger
	// KeyTTL is how long a lot's registered keys are trusted without
	// reading them again (default 30s). A miss reads them again at once.
	KeyTTL time.Duration
	// OnChange, when set, is called after a committed event moved a
	// reservation, with its lot: the availability cache is invalidated
	// there, since a check-out frees a spot early.
	OnChange func(ctx context.Context, lotID string)
}

// Ingest consumes gate events and gate status from the broker into the
// store.
type Ingest struct {
	store IngestStore
	keys  *keyCache
	cfg   MQTTConfig
	opts  IngestOptions
	log   *slog.Logger
	sem   chan struct{}

	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup

	// onResult, when set (by tests), hears the outcome of every message.
	onResult func(ingestResult)
}

// ingestResult is what became of one message.
type ingestResult struct {
	topic      string
	eventID    string
	outcome    string // stored, duplicate, status, rejected, abandoned
	reason     string // why it was rejected
	transition string // the status a reservation moved to, or for a status message the gate's new state
}

// NewIngest returns an ingest writing to store and reading from the
// broker in cfg. cfg.ClientID is required and must stay the same across
// restarts of a replica: it names the persistent session in which the broker
// keeps the events that arrive while the replica is away.
func NewIngest(store IngestStore, cfg MQTTConfig, opts IngestOptions) (*Ingest, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("relay: ingest needs a fixed MQTT client id")
	}
	if _, err := cfg.options(); err != nil {
		return nil, err
	}
	if opts.Group == "" {
		opts.Group = "parkcloud"
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.KeyTTL <= 0 {
		opts.KeyTTL = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Ingest{
		store: store,
		keys:  newKeyCache(store, opts.KeyTTL),
		cfg:   cfg,
		opts:  opts,
		log:   opts.Logger,
		sem:   make(chan struct{}, opts.Workers),
	}, nil
}

// Run consumes until ctx ends, then waits for the messages in progress and
// disconnects, keeping the session so the broker holds what comes meanwhile.
// It returns nil then, or an error if the client could not be set up.
// Connection losses are retried by paho, never returned.
func (in *Ingest) Run(ctx context.Context) error {
	opts, err := in.cfg.options()
	if err != nil {
		return err
	}
	opts.SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		// Acknowledge only after the commit, so a crash before it makes the
		// broker redeliver (dedup by event_id makes that harmless).
		SetAutoAckDisabled(true).
		// Each message in its own goroutine: a slow transaction must not
		// stall paho's reader, or keepalives would time out.
		SetOrderMatters(false).
		// Messages the broker queued for the session arrive right after
		// CONNACK, before any Subscribe call has added a route: without a
		// default handler paho has nobody to give them to and they are
		// lost to the application (DEPENDENCIES.md).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { in.handle(ctx, m) }).
		SetOnConnectHandler(func(c mqtt.Client) { in.subscribe(ctx, c) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			in.log.Warn("ingest: mqtt connection lost", "err", err)
		})
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("connect mqtt: %w", err)
		}
	case <-ctx.Done():
	}
	<-ctx.Done()

	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.running.Wait()
	c.Disconnect(250)
	return nil
}

// subscribe (re)subscribes on every connection. The broker keeps the
// subscriptions in the persistent session anyway; subscribing again covers
// a session that expired or a broker that lost its state.
func (in *Ingest) subscribe(ctx context.Context, c mqtt.Client) {
	events := protocol.SharedGateEventsFilter(in.opts.Group)
	if in.opts.Unshared {
		events = protocol.AllGateEventsFilter
	}
	filters := map[string]byte{events: 1}
	if !in.opts.SkipStatus {
		// Not shared: every replica should see the retained statuses.
		filters[GateStatusFilter] = 1
	}
	bo := backoff{min: 200 * time.Millisecond, max: 10 * time.Second}
	for ctx.Err() == nil && c.IsConnectionOpen() {
		// No callback: every message goes to the default handler, which
		// also serves messages delivered before this SUBACK.
		tok := c.SubscribeMultiple(filters, nil)
		err := waitToken(ctx, tok, 10*time.Second)
		if err == nil {
			if st, ok := tok.(*mqtt.SubscribeToken); ok {
				for f, code := range st.Result() {
					if code == 0x80 {
						err = fmt.Errorf("broker refused %s", f)
					}
				}
			}
		}
		if err == nil {
			return
		}
		in.log.Error("ingest: subscribe", "err", err)
		sleep(ctx, bo.next())
	}
}

func waitToken(ctx context.Context, tok mqtt.Token, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return errors.New("timed out")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle processes one message and acknowledges it once it is committed or
// known to be worthless; a message left unacknowledged (shutdown) is
// redelivered by the broker in the next session.
func (in *Ingest) handle(ctx context.Context, m mqtt.Message) {
	received := time.Now()
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.running.Add(1)
	in.mu.Unlock()
	defer in.running.Done()

	select {
	case in.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	res := in.process(ctx, m, received)
	<-in.sem
	if res.outcome != "abandoned" {
		m.Ack()
	}
	if in.onResult != nil {
		in.onResult(res)
	}
}

func (in *Ingest) reject(res ingestResult, reason string, err error) ingestResult {
	ingestRejects.WithLabelValues(reason).Inc()
	in.log.Warn("ingest: message dropped", "topic", res.topic, "reason", reason, "err", err)
	res.outcome, res.reason = "rejected", reason
	return res
}

func (in *Ingest) process(ctx context.Context, m mqtt.Message, received time.Time) ingestResult {
	res := ingestResult{topic: m.Topic()}
	lot, gate, kind, err := protocol.ParseGateTopic(m.Topic())
	if err != nil {
		return in.reject(res, rejectTopic, err)
	}
	if kind == "status" {
		return in.status(ctx, res, lot, gate, m.Payload(), !m.Retained(), received)
	}
	var e protocol.GateEvent
	if err := json.Unmarshal(m.Payload(), &e); err != nil {
		return in.reject(res, rejectBadJSON, err)
	}
	res.eventID = e.EventID
	if err := e.Validate(); err != nil {
		return in.reject(res, rejectInvalid, err)
	}
	// The broker's ACL lets a lot's credentials publish only under its
	// own topics; an event naming another lot is forged or broken.
	if e.LotID != lot || e.GateID != gate {
		return in.reject(res, rejectTopicMismatch, fmt.Errorf("event of lot %q gate %q on topic of lot %q gate %q", e.LotID, e.GateID, lot, gate))
	}
	if !isUUID(lot) {
		return in.reject(res, rejectUnknownLot, fmt.Errorf("lot id %q is not a uuid", lot))
	}
	err = in.retry(ctx, func() error { return in.keys.verify(ctx, lot, &e, received) })
	switch {
	case ctx.Err() != nil:
		res.outcome = "abandoned"
		return res
	case errors.Is(err, protocol.ErrBadSignature):
		return in.reject(res, rejectBadSignature, fmt.Errorf("no key of lot %s verifies event %s", lot, e.EventID))
	case cloud.ErrorCode(err) == cloud.ENotFound:
		return in.reject(res, rejectUnknownLot, err)
	case err != nil:
		return in.reject(res, rejectDatabase, err)
	}
	var out cloud.GateEventResult
	err = in.retry(ctx, func() error {
		var err error
		out, err = in.store.IngestGateEvent(ctx, &e, transitionFor(&e))
		return err
	})
	switch {
	case ctx.Err() != nil:
		res.outcome = "abandoned"
		return res
	case cloud.ErrorCode(err) == cloud.ENotFound:
		return in.reject(res, rejectUnknownLot, err)
	case err != nil:
		return in.reject(res, rejectDatabase, err)
	case out.Duplicate:
		ingestEvents.WithLabelValues(ingestDuplicate).Inc()
		res.outcome = "duplicate"
	default:
		ingestEvents.WithLabelValues(ingestStored).Inc()
		res.outcome = "stored"
		if out.Moved != "" {
			ingestTransitions.WithLabelValues(string(out.Moved)).Inc()
			res.transition = string(out.Moved)
			if in.opts.OnChange != nil {
				in.opts.OnChange(ctx, lot)
			}
		}
	}
	return res
}

// retry runs f until it succeeds, fails for good, or ctx ends. Failures
// the store calls unavailable (deadlock, serialization failure, database
// unreachable) are retried with jittered backoff for as long as it takes rather than a fixed
// number of times: an MQTT 3.1.1 broker redelivers an unacknowledged message
// only on the next connection, so giving up would strand it, while holding
// it keeps one of the broker's in-flight slots busy, which is the
// back-pressure wanted while the database is down.
func (in *Ingest) retry(ctx context.Context, f func() error) error {
	bo := backoff{min: 5 * time.Millisecond, max: 2 * time.Second}
	for {
		err := f()
		if err == nil || ctx.Err() != nil || cloud.ErrorCode(err) != cloud.EUnavailable {
			return err
		}
		ingestErrors.Inc()
		if bo.n == 0 || bo.n%20 == 0 {
			in.log.Warn("ingest: retrying", "err", err, "attempt", bo.n+1)
		}
		if !sleep(ctx, bo.next()) {
			return ctx.Err()
		}
	}
}

// status records a gate's retained status. Edges publish protocol.GateStatus
// JSON (their last will is the same with state offline); a bare "online" or
// "offline" is accepted too, and an empty payload (a cleared retained
// message) is ignored. live is false for a retained copy the broker replays
// on subscribing: an MQTT 3.1.1 broker sets the retain flag only on those,
// so a last will (or anything the broker queued for this session) arrives
// live; see cloud.GateEventStore.RecordGateStatus for why that matters.
func (in *Ingest) status(ctx context.Context, res ingestResult, lot, gate string, payload []byte, live bool, received time.Time) ingestResult {
	res.outcome = "status"
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 {
		return res
	}
	st := protocol.GateStatus{State: string(payload)}
	if payload[0] == '{' {
		if err := json.Unmarshal(payload, &st); err != nil {
			return in.reject(res, rejectBadJSON, err)
		}
	}
	if st.State != protocol.StateOnline && st.State != protocol.StateOffline {
		return in.reject(res, rejectInvalid, fmt.Errorf("unknown gate state %q", st.State))
	}
	if (st.LotID != "" && st.LotID != lot) || (st.GateID != "" && st.GateID != gate) {
		return in.reject(res, rejectTopicMismatch, fmt.Errorf("status of lot %q gate %q on topic of lot %q gate %q", st.LotID, st.GateID, lot, gate))
	}
	if !isUUID(lot) {
		return in.reject(res, rejectUnknownLot, fmt.Errorf("lot id %q is not a uuid", lot))
	}
	if st.At.IsZero() {
		st.At = time.Now()
	}
	var moved string
	err := in.retry(ctx, func() error {
		var err error
		moved, err = in.store.RecordGateStatus(ctx, lot, gate, st, live, received)
		return err
	})
	switch {
	case ctx.Err() != nil:
		res.outcome = "abandoned"
	case cloud.ErrorCode(err) == cloud.ENotFound:
		return in.reject(res, rejectUnknownLot, err)
	case err != nil:
		return in.reject(res, rejectDatabase, err)
	default:
		ingestStatuses.Inc()
		res.transition = moved
	}
	return res
}

// transitionFor says which move, if any, an event asks for: an open at an
// entry checks in a confirmed reservation; an open at an exit completes one
// that is checked in, or confirmed when the entry read was missed — a car
// that is leaving has been inside.
func transitionFor(e *protocol.GateEvent) cloud.Transition {
	if e.Decision != protocol.DecisionOpen || (e.Kind != "" && e.Kind != protocol.KindDecision) {
		return cloud.Transition{}
	}
	if !isUUID(e.ReservationID) {
		return cloud.Transition{}
	}
	switch e.Direction {
	case protocol.DirectionEntry:
		return cloud.Transition{From: []cloud.Status{cloud.StatusConfirmed}, To: cloud.StatusCheckedIn}
	case protocol.DirectionExit:
		return cloud.Transition{From: []cloud.Status{cloud.StatusCheckedIn, cloud.StatusConfirmed}, To: cloud.StatusCompleted}
	}
	return cloud.Transition{}
}

// isUUID reports whether s is a uuid in its 36-character text form, the only
// form the store's ids take: anything else names no lot or reservation, and
// is refused before a database round trip.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}
