package protocol

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A lot's change stream carries more than reservations: permits (plates the
// lot lets in for a period, without a booking) and commands such as a
// presence reset. They share the reservations' topic, the lot's one seq and
// the cloud's signature, so an edge applies them in the one order the cloud
// wrote them, through the same catch-up, with no second stream to keep in
// step.
//
// Every kind but the reservation carries its body in Data, a flat map of
// strings, and its signature covers Kind, Op and every entry of Data
// whatever they are (SigningBytes). That is what lets a receiver verify a
// change of a kind it does not know, and then skip it while still counting
// its seq as applied: a kind added later cannot wedge an edge built before
// it, and a forger cannot use "unknown kind" to burn a seq either, because
// the change is skipped only after its signature verified. A new kind must
// therefore put everything it says into Data (nested values as strings).

// ChangeKind names what a change is about.
type ChangeKind string

// Change kinds.
const (
	// KindReservation (the empty kind) is a reservation change: Op upsert
	// or delete, the body in Reservation. Its wire and signing forms are
	// those of every change before kinds existed.
	KindReservation ChangeKind = ""
	// KindPermit is a permit: Op upsert (stored or replaced) or delete
	// (revoked), the body in Data as the Permit* keys.
	KindPermit ChangeKind = "permit"
	// KindPresenceReset is an operator's command to forget that a plate is
	// inside: Op reset, the body in Data as the Presence* keys.
	KindPresenceReset ChangeKind = "presence_reset"
	// KindGateOpen is an operator's remote open of one gate: Op open, the
	// body in Data as the Gate* keys. A command with a deadline: an edge
	// that learns of it after NotAfter (it was offline) does not open.
	KindGateOpen ChangeKind = "gate_open"
)

// OpReset is the op of a presence reset: a command, not a record to store.
const OpReset Op = "reset"

// OpOpen is the op of a remote open.
const OpOpen Op = "open"

// Data keys of the kinds this build knows. Times are RFC 3339 with
// nanoseconds, in UTC.
const (
	DataID         = "id"          // the permit's id; the reset command's id
	DataPlate      = "plate"       // normalised
	DataValidFrom  = "valid_from"  // permit
	DataValidUntil = "valid_until" // permit
	DataIssuedAt   = "issued_at"   // presence reset, remote open: when the operator asked, by the cloud's clock
	DataGateID     = "gate_id"     // remote open
	DataReason     = "reason"      // remote open: the operator's, recorded on the gate event
	DataNotAfter   = "not_after"   // remote open: the last instant an edge may act on it
)

// ErrUnknownChange wraps the Validate error of a change whose kind or op
// this build does not know, or whose known body it cannot use.
var ErrUnknownChange = errors.New("protocol: change this receiver cannot use")

// Permit is a plate the lot lets in during [ValidFrom, ValidUntil) without
// a reservation: monthly parkers, staff.
type Permit struct {
	ID         string
	Plate      string
	ValidFrom  time.Time
	ValidUntil time.Time
}

// PresenceReset asks an edge to forget that Plate is inside, as of
// IssuedAt: an entry the edge recorded after IssuedAt stands.
type PresenceReset struct {
	ID       string
	Plate    string
	IssuedAt time.Time
}

// GateOpen asks the edge that runs GateID to open its barrier, once, for
// Reason, if it learns of it by NotAfter (its own clock).
type GateOpen struct {
	ID       string
	GateID   string
	Reason   string
	IssuedAt time.Time
	NotAfter time.Time
}

// GateOpenChange is the unsigned change that carries g at seq of lot.
func GateOpenChange(lotID string, seq int64, g GateOpen) ReservationChange {
	return ReservationChange{V: Version, LotID: lotID, Seq: seq, Kind: KindGateOpen, Op: OpOpen, Data: map[string]string{
		DataID: g.ID, DataGateID: g.GateID, DataReason: g.Reason,
		DataIssuedAt: FormatTime(g.IssuedAt), DataNotAfter: FormatTime(g.NotAfter),
	}}
}

// GateOpen returns the command a KindGateOpen change carries.
func (c *ReservationChange) GateOpen() (GateOpen, error) {
	if c.Kind != KindGateOpen {
		return GateOpen{}, fmt.Errorf("%w: kind %q is not a remote open", ErrUnknownChange, c.Kind)
	}
	g := GateOpen{ID: c.Data[DataID], GateID: c.Data[DataGateID], Reason: c.Data[DataReason]}
	var err error
	if g.IssuedAt, err = time.Parse(time.RFC3339Nano, c.Data[DataIssuedAt]); err != nil {
		return g, fmt.Errorf("%w: remote open issued_at: %v", ErrUnknownChange, err)
	}
	if g.NotAfter, err = time.Parse(time.RFC3339Nano, c.Data[DataNotAfter]); err != nil {
		return g, fmt.Errorf("%w: remote open not_after: %v", ErrUnknownChange, err)
	}
	switch {
	case g.GateID == "":
		return g, fmt.Errorf("%w: remote open without gate", ErrUnknownChange)
	case g.Reason == "":
		return g, fmt.Errorf("%w: remote open without reason", ErrUnknownChange)
	case g.NotAfter.Before(g.IssuedAt):
		return g, fmt.Errorf("%w: remote open due before it was issued", ErrUnknownChange)
	}
	return g, nil
}

// FormatTime is how a time is written into Data.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// PermitChange is the unsigned change that upserts (op upsert) or revokes
// (op delete) p at seq of lot.
func PermitChange(lotID string, seq int64, op Op, p Permit) ReservationChange {
	return ReservationChange{V: Version, LotID: lotID, Seq: seq, Kind: KindPermit, Op: op, Data: map[string]string{
		DataID: p.ID, DataPlate: p.Plate, DataValidFrom: FormatTime(p.ValidFrom), DataValidUntil: FormatTime(p.ValidUntil),
	}}
}

// PresenceResetChange is the unsigned change that carries r at seq of lot.
func PresenceResetChange(lotID string, seq int64, r PresenceReset) ReservationChange {
	return ReservationChange{V: Version, LotID: lotID, Seq: seq, Kind: KindPresenceReset, Op: OpReset, Data: map[string]string{
		DataID: r.ID, DataPlate: r.Plate, DataIssuedAt: FormatTime(r.IssuedAt),
	}}
}

// Permit returns the permit a KindPermit change carries.
func (c *ReservationChange) Permit() (Permit, error) {
	if c.Kind != KindPermit {
		return Permit{}, fmt.Errorf("%w: kind %q is not a permit", ErrUnknownChange, c.Kind)
	}
	p := Permit{ID: c.Data[DataID], Plate: c.Data[DataPlate]}
	if p.ID == "" {
		return p, fmt.Errorf("%w: permit without id", ErrUnknownChange)
	}
	if c.Op == OpDelete {
		return p, nil // a revoke needs only the id
	}
	var err error
	if p.ValidFrom, err = time.Parse(time.RFC3339Nano, c.Data[DataValidFrom]); err != nil {
		return p, fmt.Errorf("%w: permit valid_from: %v", ErrUnknownChange, err)
	}
	if p.ValidUntil, err = time.Parse(time.RFC3339Nano, c.Data[DataValidUntil]); err != nil {
		return p, fmt.Errorf("%w: permit valid_until: %v", ErrUnknownChange, err)
	}
	switch {
	case p.Plate == "":
		return p, fmt.Errorf("%w: permit without plate", ErrUnknownChange)
	case !p.ValidFrom.Before(p.ValidUntil):
		return p, fmt.Errorf("%w: permit with empty validity", ErrUnknownChange)
	}
	return p, nil
}

// PresenceReset returns the command a KindPresenceReset change carries.
func (c *ReservationChange) PresenceReset() (PresenceReset, error) {
	if c.Kind != KindPresenceReset {
		return PresenceReset{}, fmt.Errorf("%w: kind %q is not a presence reset", ErrUnknownChange, c.Kind)
	}
	r := PresenceReset{ID: c.Data[DataID], Plate: c.Data[DataPlate]}
	var err error
	if r.IssuedAt, err = time.Parse(time.RFC3339Nano, c.Data[DataIssuedAt]); err != nil {
		return r, fmt.Errorf("%w: presence reset issued_at: %v", ErrUnknownChange, err)
	}
	if r.Plate == "" {
		return r, fmt.Errorf("%w: presence reset without plate", ErrUnknownChange)
	}
	return r, nil
}

// validateBody is Validate for the kinds other than reservations.
func (c *ReservationChange) validateBody() error {
	switch {
	case c.Kind == KindPermit && (c.Op == OpUpsert || c.Op == OpDelete):
		_, err := c.Permit()
		return err
	case c.Kind == KindPresenceReset && c.Op == OpReset:
		_, err := c.PresenceReset()
		return err
	case c.Kind == KindGateOpen && c.Op == OpOpen:
		_, err := c.GateOpen()
		return err
	}
	return fmt.Errorf("%w: kind %q op %q", ErrUnknownChange, c.Kind, c.Op)
}

// kindSigningBytes is the canonical form of a change of any kind but the
// reservation: the envelope, Kind, Op and Data's entries in key order, each
// field written as its length, ':' and its bytes (Data's strings may hold
// any byte, and a separator alone would let text slide from one field into
// the next under the same signature). Its prefix differs from the
// reservation form's, so no signature of one kind is ever one of another.
func (c *ReservationChange) kindSigningBytes() []byte {
	keys := make([]string, 0, len(c.Data))
	for k := range c.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(128 + 32*len(keys))
	b.WriteString("parkgate.change.v")
	b.WriteString(strconv.Itoa(c.V))
	field := func(f string) {
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.WriteString(f)
	}
	field(c.LotID)
	field(strconv.FormatInt(c.Seq, 10))
	field(string(c.Kind))
	field(string(c.Op))
	field(strconv.Itoa(len(keys)))
	for _, k := range keys {
		field(k)
		field(c.Data[k])
	}
	return []byte(b.String())
}
