package booking

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
)

var errNotExtendable = cloud.Errorf(cloud.ENotExtendable,
	"only a confirmed or checked-in booking that has not ended can be extended")

// extensionBody is the 201 of an extension: what was held and how to pay.
type extensionBody struct {
	ID            string         `json:"id"`
	ReservationID string         `json:"reservation_id"`
	Status        cloud.Status   `json:"status"`
	StartsAt      time.Time      `json:"starts_at"`
	EndsAt        time.Time      `json:"ends_at"`
	HoldExpiresAt time.Time      `json:"hold_expires_at"`
	Price         cloud.Money    `json:"price"`
	Payment       *cloud.Payment `json:"payment"`
}

// extensionHash identifies an extension request's meaning for its key; the
// prefix keeps it from ever equalling a hold's.
func extensionHash(reservationID string, endsAt time.Time) []byte {
	h := sha256.New()
	h.Write([]byte("extension\x00" + reservationID + "\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(endsAt.UnixNano()))
	h.Write(b[:])
	return h.Sum(nil)
}

// Extend holds the interval from a reservation's ends_at to endsAt on its
// spot for its driver, exactly once per idempotency key, and returns the
// 201 with the extension's Checkout Session (or a stored answer replayed).
// The interval is a hold like any other (same TTL, same exclusion rule):
// taken → no_availability; the reservation not CONFIRMED or CHECKED_IN, or
// over → not_extendable. Paid, the reservation's ends_at moves (webhook,
// extensionPaid); on a free lot it moves at once and the answer says
// CONFIRMED with "payment":null, as a free hold's does.
func (s *Service) Extend(ctx context.Context, key, reservationID string, endsAt time.Time) (Response, error) {
	endsAt = endsAt.UTC().Truncate(time.Microsecond)
	hash := extensionHash(reservationID, endsAt)
	for range 2 {
		resp, again, err := s.extend(ctx, key, hash, reservationID, endsAt)
		if !again {
			return resp, err
		}
	}
	return Response{}, cloud.Errorf(cloud.EIdempotencyInUse, "a request with this Idempotency-Key is in progress")
}

func (s *Service) extend(ctx context.Context, key string, hash []byte, reservationID string, endsAt time.Time) (Response, bool, error) {
	// A retry after the first attempt finished is its answer, whatever the
	// reservation has become since (extended, ended).
	if resp, ok, err := s.replayExtension(ctx, key, hash); ok || err != nil {
		return resp, false, err
	}
	r, err := s.Reservation(ctx, reservationID)
	if err != nil {
		return Response{}, false, err
	}
	now := s.Now()
	if r.Status != cloud.StatusConfirmed && r.Status != cloud.StatusCheckedIn || !r.EndsAt.After(now) {
		return Response{}, false, errNotExtendable
	}
	if !endsAt.After(r.EndsAt) {
		return Response{}, false, cloud.FieldError("ends_at", "ends_at must be after the reservation's ends_at (%s)", r.EndsAt.Format(time.RFC3339))
	}
	if err := CheckWindow(now, r.StartsAt, endsAt); err != nil {
		return Response{}, false, err
	}
	lot, err := s.Lot(ctx, r.LotID)
	if err != nil {
		return Response{}, false, err
	}
	price, err := cloud.Price(lot.HourlyRate, r.EndsAt, endsAt)
	if err != nil {
		return Response{}, false, err
	}
	id := uuid.NewString()
	held, err := s.Store.HoldExtension(ctx, cloud.ExtensionParams{ID: id, ParentID: r.ID, From: r.EndsAt, EndsAt: endsAt,
		HoldTTL: s.HoldTTL, Price: price, Key: key, RequestHash: hash, Lease: s.Lease, Now: now})
	if err != nil {
		return Response{}, false, err
	}
	switch held.Outcome {
	case cloud.ExtensionHeld:
	case cloud.ExtensionKeyExists:
		return s.existingExtensionKey(ctx, key, hash, lot)
	case cloud.ExtensionNotFound:
		return Response{}, false, cloud.Errorf(cloud.ENotFound, "reservation %q not found", reservationID)
	case cloud.ExtensionNotExtendable:
		return Response{}, false, errNotExtendable
	case cloud.ExtensionChanged:
		return Response{}, false, cloud.Errorf(cloud.EConflict, "the reservation changed meanwhile; retry")
	case cloud.ExtensionNoAvailability:
		holdConflicts.WithLabelValues(cloud.ENoAvailability).Inc()
		return Response{}, false, cloud.Errorf(cloud.ENoAvailability, "the spot is taken for part of the extension")
	default:
		return Response{}, false, fmt.Errorf("extend: unexpected outcome %q", held.Outcome)
	}
	s.invalidateSilent(ctx, lot.ID) // an extension's hold: nothing for the edges until merged
	ext := cloud.Reservation{ID: id, Status: cloud.StatusPending, LotID: lot.ID, Plate: r.Plate,
		StartsAt: r.EndsAt, EndsAt: endsAt, HoldExpiresAt: held.HoldExpiresAt, Price: price, ExtendsID: r.ID}
	resp, err := s.handOffExtension(ctx, key, lot, ext)
	return resp, false, err
}

// handOffExtension pays for a fresh extension: a Checkout Session, or on a
// free lot the merge at once; then the answer is stored under the key.
func (s *Service) handOffExtension(ctx context.Context, key string, lot cloud.Lot, ext cloud.Reservation) (Response, error) {
	body := extensionBody{ID: ext.ID, ReservationID: ext.ExtendsID, Status: cloud.StatusPending,
		StartsAt: ext.StartsAt, EndsAt: ext.EndsAt, HoldExpiresAt: ext.HoldExpiresAt, Price: ext.Price}
	if s.Payments == nil || ext.Price.Amount == 0 {
		outcome, lotID, err := s.Store.Extend(ctx, ext.ID, "", s.Now())
		if err != nil {
			return Response{}, err
		}
		if outcome != cloud.ExtendDone && outcome != cloud.ExtendAlready {
			_ = s.Store.DeleteKey(ctx, key)
			return Response{}, errNotExtendable
		}
		s.invalidate(ctx, lotID)
		body.Status = cloud.StatusConfirmed
	} else {
		sess, err := s.Payments.CreateCheckoutSession(ctx, cloud.Checkout{
			ReservationID: ext.ID, LotID: lot.ID,
			Description: fmt.Sprintf("Parking at %s, extended to %s", lot.Name, ext.EndsAt.Format(time.RFC3339)),
			Amount:      ext.Price.Amount, Currency: ext.Price.Currency, ExpiresAt: ext.HoldExpiresAt,
			IdempotencyKey: "parkgate-checkout-" + ext.ID,
		})
		if err != nil {
			if aerr := s.Store.AbandonHold(context.WithoutCancel(ctx), ext.ID, key); aerr != nil {
				s.Log.Error("release extension", "extension", ext.ID, "err", aerr)
			} else {
				s.invalidateSilent(ctx, lot.ID) // PENDING → CANCELLED: no edge had it
			}
			if cloud.ErrorCode(err) == cloud.EPaymentProvider {
				return Response{}, err
			}
			return Response{}, &cloud.Error{Code: cloud.EUnavailable, Message: "the payment provider cannot be reached; retry with the same Idempotency-Key"}
		}
		body.Payment = &cloud.Payment{Provider: "stripe", SessionID: sess.ID, URL: sess.URL}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return Response{}, fmt.Errorf("encode extension: %w", err)
	}
	var sid, surl string
	if body.Payment != nil {
		sid, surl = body.Payment.SessionID, body.Payment.URL
	}
	if err := s.Store.FinishHold(ctx, ext.ID, sid, surl, key, http.StatusCreated, b); err != nil {
		return Response{}, err
	}
	return Response{Status: http.StatusCreated, Body: b}, nil
}

// replayExtension answers a retry whose first attempt finished, even once
// the reservation has moved on (extended, ended): ok false when the key is
// not a finished extension request of this meaning.
func (s *Service) replayExtension(ctx context.Context, key string, hash []byte) (Response, bool, error) {
	rec, ok, err := s.Store.IdempotencyKey(ctx, key)
	if err != nil || !ok || !rec.Done() || string(rec.RequestHash) != string(hash) {
		return Response{}, false, err
	}
	idempotentReplays.WithLabelValues("postgres").Inc()
	return Response{Status: rec.ResponseStatus, Body: rec.ResponseBody, Replayed: true}, true, nil
}

// existingKey answers an extension request whose key is stored: replay,
// refuse, or take over from a first attempt that died in flight.
func (s *Service) existingExtensionKey(ctx context.Context, key string, hash []byte, lot cloud.Lot) (Response, bool, error) {
	rec, ok, err := s.Store.IdempotencyKey(ctx, key)
	if err != nil {
		return Response{}, false, err
	}
	if !ok {
		return Response{}, true, nil
	}
	if string(rec.RequestHash) != string(hash) {
		return Response{}, false, cloud.Errorf(cloud.EIdempotencyReused, "this Idempotency-Key was used with another request")
	}
	if rec.Done() {
		idempotentReplays.WithLabelValues("postgres").Inc()
		return Response{Status: rec.ResponseStatus, Body: rec.ResponseBody, Replayed: true}, false, nil
	}
	took, err := s.Store.TakeOverKey(ctx, key, s.Lease)
	if err != nil {
		return Response{}, false, err
	}
	if !took {
		return Response{}, false, cloud.Errorf(cloud.EIdempotencyInUse, "a request with this Idempotency-Key is in progress")
	}
	ext, err := s.Store.Reservation(ctx, rec.ReservationID)
	if err == nil && ext.Status == cloud.StatusPending && ext.HoldExpiresAt.After(s.Now()) {
		resp, err := s.handOffExtension(ctx, key, lot, ext)
		return resp, false, err
	}
	if err != nil && cloud.ErrorCode(err) != cloud.ENotFound {
		return Response{}, false, err
	}
	if err := s.Store.DeleteKey(ctx, key); err != nil {
		return Response{}, false, err
	}
	return Response{}, true, nil
}

// extensionPaid merges a paid extension into its reservation, or refunds
// it when its hold lapsed or the reservation can no longer be extended.
func (s *Service) extensionPaid(ctx context.Context, ext cloud.Reservation, e cloud.PaymentEvent) error {
	outcome, lotID, err := s.Store.Extend(ctx, ext.ID, e.PaymentIntentID, s.Now())
	if err != nil {
		return err
	}
	switch outcome {
	case cloud.ExtendDone:
		transitions.WithLabelValues(transitionExtended).Inc()
		s.invalidate(ctx, lotID)
	case cloud.ExtendRefund:
		s.invalidateSilent(ctx, lotID) // the extension lapsed; its booking is as it was
		intent := e.PaymentIntentID
		if intent == "" {
			intent = ext.PaymentIntentID
		}
		return s.refund(ctx, ext.ID, intent)
	}
	return nil
}
