package booking

import (
	"context"

	"github.com/parkgate/parkgate/cloud"
)

// MaxKeyLen bounds an Idempotency-Key.
const MaxKeyLen = 255

// CheckKey checks an Idempotency-Key: it is required, and at most
// MaxKeyLen long.
func CheckKey(key string) error {
	if key == "" {
		return cloud.Errorf(cloud.EIdempotencyMiss, "the Idempotency-Key header is required")
	}
	if len(key) > MaxKeyLen {
		return &cloud.Error{Code: cloud.EInvalid, Field: "Idempotency-Key", Message: "Idempotency-Key is longer than 255 characters"}
	}
	return nil
}

func (s *Service) saveResponse(ctx context.Context, key string, hash []byte, r Response) {
	if s.Guard != nil {
		s.Guard.SaveResponse(ctx, key, cloud.StoredResponse{RequestHash: hash, Status: r.Status, Body: r.Body})
	}
}

// existingKey answers a request whose key is already stored: replay, refuse,
// or take over from a first attempt that died in flight.
func (s *Service) existingKey(ctx context.Context, key string, hash []byte, lot cloud.Lot, req HoldRequest) (Response, bool, error) {
	rec, ok, err := s.Store.IdempotencyKey(ctx, key)
	if err != nil {
		return Response{}, false, err
	}
	if !ok {
		return Response{}, true, nil // purged in between: start afresh
	}
	if string(rec.RequestHash) != string(hash) {
		return Response{}, false, cloud.Errorf(cloud.EIdempotencyReused, "this Idempotency-Key was used with another request")
	}
	if rec.Done() {
		body := rec.ResponseBody
		if len(body) == 0 {
			// Stored done by the hold itself: the body is the
			// reservation as it was made.
			r, err := s.Store.Reservation(ctx, rec.ReservationID)
			if err != nil {
				return Response{}, false, err
			}
			r.AccessToken = rec.AccessToken
			if body, err = holdBody(r); err != nil {
				return Response{}, false, err
			}
		}
		idempotentReplays.WithLabelValues("postgres").Inc()
		s.saveResponse(ctx, key, hash, Response{Status: rec.ResponseStatus, Body: body})
		return Response{Status: rec.ResponseStatus, Body: body, Replayed: true}, false, nil
	}
	took, err := s.Store.TakeOverKey(ctx, key, s.Lease)
	if err != nil {
		return Response{}, false, err
	}
	if !took {
		return Response{}, false, cloud.Errorf(cloud.EIdempotencyInUse, "a request with this Idempotency-Key is in progress")
	}
	// The first attempt died after making its hold. Resume it if the hold
	// still stands; otherwise start over with a new hold.
	r, err := s.Store.Reservation(ctx, rec.ReservationID)
	if err == nil && r.Status == cloud.StatusPending && r.HoldExpiresAt.After(s.Now()) {
		r.AccessToken = rec.AccessToken
		resp, err := s.handOff(ctx, key, hash, lot, r)
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
