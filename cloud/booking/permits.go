package booking

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// Permit rules. A permit is an operator's long arrangement (a month, a
// year of staff parking), so its period may be far longer than a booking's.
const (
	// MaxPermitPeriod is the longest a permit may last.
	MaxPermitPeriod = 400 * 24 * time.Hour
	// MaxLabelLen bounds a permit's label, in characters.
	MaxLabelLen = 200
)

// PermitRequest is an operator's new permit. A zero ValidFrom is now.
type PermitRequest struct {
	LotID      string
	Plate      string
	ValidFrom  time.Time
	ValidUntil time.Time
	Label      string
}

// Validate checks a permit request at now and returns it with the plate
// normalised, the times in UTC and ValidFrom filled in.
func (r PermitRequest) Validate(now time.Time) (PermitRequest, error) {
	p, err := protocol.NormalizePlate(r.Plate)
	if err != nil {
		return r, cloud.FieldError("plate", "plate must be 2 to 10 letters and digits once spaces, dashes and dots are dropped")
	}
	r.Plate = p
	if r.ValidFrom.IsZero() {
		r.ValidFrom = now
	}
	if r.ValidUntil.IsZero() {
		return r, cloud.FieldError("valid_until", "valid_until is required (RFC 3339)")
	}
	// Postgres keeps microseconds: so does the answer, so it is what the
	// list and the edges see later.
	r.ValidFrom = r.ValidFrom.UTC().Truncate(time.Microsecond)
	r.ValidUntil = r.ValidUntil.UTC().Truncate(time.Microsecond)
	switch {
	case !r.ValidFrom.Before(r.ValidUntil):
		return r, cloud.FieldError("valid_until", "valid_until must be after valid_from")
	case r.ValidUntil.Sub(r.ValidFrom) > MaxPermitPeriod:
		return r, cloud.FieldError("valid_until", "a permit may last at most 400 days")
	case !r.ValidUntil.After(now):
		return r, cloud.FieldError("valid_until", "valid_until is in the past")
	case r.ValidFrom.After(now.Add(MaxAdvance)):
		return r, cloud.FieldError("valid_from", "valid_from is more than 366 days ahead")
	}
	// A label is optional: blank is none.
	if r.Label = strings.TrimSpace(r.Label); r.Label != "" {
		if err := CheckText("label", r.Label, MaxLabelLen); err != nil {
			return r, err
		}
	}
	return r, nil
}

// permits returns the permit store, or unavailable when none is wired.
func (s *Service) permits() (cloud.PermitStore, error) {
	if s.Permits == nil {
		return nil, cloud.Errorf(cloud.EUnavailable, "permits are not configured")
	}
	return s.Permits, nil
}

// CreatePermit validates and stores a permit; its change reaches the lot's
// edges through the change log.
func (s *Service) CreatePermit(ctx context.Context, req PermitRequest) (cloud.Permit, error) {
	st, err := s.permits()
	if err != nil {
		return cloud.Permit{}, err
	}
	lot, err := LotID(req.LotID)
	if err != nil {
		return cloud.Permit{}, err
	}
	if req, err = req.Validate(s.Now()); err != nil {
		return cloud.Permit{}, err
	}
	p, _, err := st.CreatePermit(ctx, cloud.Permit{ID: uuid.NewString(), LotID: lot, Plate: req.Plate,
		ValidFrom: req.ValidFrom, ValidUntil: req.ValidUntil, Label: req.Label})
	if err != nil {
		return cloud.Permit{}, err
	}
	s.changed(lot)
	return p, nil
}

// ListPermits lists a lot's live permits that have not ended.
func (s *Service) ListPermits(ctx context.Context, lotID string) ([]cloud.Permit, error) {
	st, err := s.permits()
	if err != nil {
		return nil, err
	}
	lot, err := LotID(lotID)
	if err != nil {
		return nil, err
	}
	return st.Permits(ctx, lot, s.Now())
}

// RevokePermit revokes a live permit; the edges stop opening for it once
// they have synced the change. A permit revoked already is not_found.
func (s *Service) RevokePermit(ctx context.Context, lotID, permitID string) error {
	st, err := s.permits()
	if err != nil {
		return err
	}
	lot, err := LotID(lotID)
	if err != nil {
		return err
	}
	if _, err := st.RevokePermit(ctx, lot, permitID); err != nil {
		return err
	}
	s.changed(lot)
	return nil
}

// ResetPresence sends a presence reset of plate down the lot's change log.
func (s *Service) ResetPresence(ctx context.Context, lotID, plate string) (cloud.PresenceReset, error) {
	st, err := s.permits()
	if err != nil {
		return cloud.PresenceReset{}, err
	}
	lot, err := LotID(lotID)
	if err != nil {
		return cloud.PresenceReset{}, err
	}
	p, err := protocol.NormalizePlate(plate)
	if err != nil {
		return cloud.PresenceReset{}, cloud.FieldError("plate", "plate must be 2 to 10 letters and digits once spaces, dashes and dots are dropped")
	}
	r, err := st.ResetPresence(ctx, cloud.PresenceReset{ID: uuid.NewString(), LotID: lot, Plate: p})
	if err != nil {
		return r, err
	}
	s.changed(lot)
	return r, nil
}

// RemoteOpenValidity is how long an edge may act on a remote open after
// it was issued: an operator opens for the driver at the intercom now, and
// an edge that was offline and hears of it later must not open for nobody.
const RemoteOpenValidity = 30 * time.Second

// MaxGateIDLen bounds a gate's id, in characters; MaxReasonLen a remote
// open's reason.
const (
	MaxGateIDLen = 64
	MaxReasonLen = 200
)

// OpenGate sends a remote open of a gate down the lot's change log; the
// edge running that gate opens it once, with reason manual_override and
// the operator's reason on its gate event, if it hears of it within
// RemoteOpenValidity.
func (s *Service) OpenGate(ctx context.Context, lotID, gateID, reason string) (cloud.GateOpen, error) {
	st, err := s.permits()
	if err != nil {
		return cloud.GateOpen{}, err
	}
	lot, err := LotID(lotID)
	if err != nil {
		return cloud.GateOpen{}, err
	}
	if err := CheckText("gate_id", gateID, MaxGateIDLen); err != nil {
		return cloud.GateOpen{}, err
	}
	if err := CheckText("reason", reason, MaxReasonLen); err != nil {
		return cloud.GateOpen{}, err
	}
	g, err := st.OpenGate(ctx, cloud.GateOpen{ID: uuid.NewString(), LotID: lot, GateID: gateID, Reason: reason}, RemoteOpenValidity)
	if err != nil {
		return g, err
	}
	s.changed(lot)
	return g, nil
}

// changed wakes the relay for the lot; a permit changes no availability.
func (s *Service) changed(lotID string) {
	if s.Changed != nil {
		s.Changed(lotID)
	}
}
