package booking

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/protocol"
)

// ClockSkew is how far in the past a hold may start: a phone's clock and a
// slow network should not turn "now" into an error.
const ClockSkew = 5 * time.Minute

// HoldRequest is the body of POST /v1/reservations.
type HoldRequest struct {
	LotID    string    `json:"lot_id"`
	Plate    string    `json:"plate"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
	SpotID   string    `json:"spot_id,omitempty"`
}

// Response is an HTTP answer the service made and may have to repeat byte
// for byte.
type Response struct {
	Status   int
	Body     []byte
	Replayed bool
	// ID is the reservation a fresh 201 made, for its Location; empty on a
	// replay, whose id is in Body alone.
	ID string
}

// Validate normalises the request and checks it; errors name the field.
// It is the one check of a hold's fields (and CheckKey of its key): call it
// once per request, before Hold.
func (r *HoldRequest) Validate(now time.Time) error {
	if r.LotID == "" {
		return cloud.FieldError("lot_id", "lot_id is required")
	}
	if r.SpotID != "" {
		if err := CheckText("spot_id", r.SpotID, MaxSpotLabelLen); err != nil {
			return err
		}
	}
	if r.Plate == "" {
		return cloud.FieldError("plate", "plate is required")
	}
	p, err := protocol.NormalizePlate(r.Plate)
	if err != nil {
		return cloud.FieldError("plate", "plate must be 2 to 10 letters and digits")
	}
	r.Plate = p
	// Postgres keeps microseconds: so does the request, before it is
	// checked (two instants a nanosecond apart would pass as a window and
	// reach the database as an empty one), and so that what is answered now
	// and what is rebuilt from the row later are the same.
	r.StartsAt, r.EndsAt = r.StartsAt.UTC().Truncate(time.Microsecond), r.EndsAt.UTC().Truncate(time.Microsecond)
	switch {
	case r.StartsAt.IsZero():
		return cloud.FieldError("starts_at", "starts_at is required (RFC 3339)")
	case r.EndsAt.IsZero():
		return cloud.FieldError("ends_at", "ends_at is required (RFC 3339)")
	}
	if err := CheckWindow(now, r.StartsAt, r.EndsAt); err != nil {
		return err
	}
	if r.StartsAt.Before(now.Add(-ClockSkew)) {
		// A search may look at a window under way; a booking pays for
		// time not yet spent.
		return cloud.FieldError("starts_at", "starts_at is in the past")
	}
	// One spelling per lot (upper case, braces and urn:uuid: parse too), so
	// the bulkheads, the rate limit and the request hash all see the same
	// lot the database does. A malformed id is no lot's: 404, as an unknown
	// one, but after the checks of the other fields as before.
	id, err := LotID(r.LotID)
	if err != nil {
		return &cloud.Error{Code: cloud.ENotFound, Field: "lot_id", Message: cloud.ErrorMessage(err)}
	}
	r.LotID = id
	return nil
}

// hash identifies a request's meaning, so that the same booking sent with
// other whitespace, field order or plate spelling counts as the same body.
func (r *HoldRequest) hash() []byte {
	h := sha256.New()
	for _, f := range []string{r.LotID, r.Plate, r.SpotID} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(r.StartsAt.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], uint64(r.EndsAt.UnixNano()))
	h.Write(b[:])
	return h.Sum(nil)
}

var (
	errLotClosed      = cloud.Errorf(cloud.ELotClosed, "this lot is closed to new bookings")
	errRateChanged    = errors.New("the lot's rate changed since it was read")
	errNoAvailability = cloud.Errorf(cloud.ENoAvailability, "no spot is free for the whole window")
	// noAvailabilityBody is the 409 stored under a key, made once.
	noAvailabilityBody = cloud.MarshalError(errNoAvailability)
)

// Limits are a caller's rate limits, each returning the error to answer
// with when it refuses; nil allows all.
type Limits struct {
	Client, Lot func(context.Context) error
	// ClientID and Refused, when the limits are the service's Guard's own
	// and it is a cloud.Admitter, let it ask both in the round trip of
	// its Peek: Refused makes the error to answer with from the refusal's
	// Retry-After. Without Refused, Client and Lot are asked in turn.
	ClientID string
	Refused  func(retryAfter time.Duration) error
}

// Hold makes a PENDING hold for a driver, exactly once per idempotency key.
// key must have passed CheckKey and req Validate, once, before: the caller
// checks them before it queues the request anywhere. It returns the response
// to send (201 with the reservation, or a stored answer replayed), or an
// error for answers that are not stored: an unknown lot or spot, a key in
// use or reused with another body, the provider away, or a limit's.
//
// On a calm lot, a request that finds on this replica a leased token of
// each of its limits (Admit leases a few at once where a limit's burst
// allows) asks Redis nothing before its write: Postgres answers a replay
// and a full window there, and the tokens are spent. Otherwise one Redis
// round trip first asks for both a response stored under the key and
// whether the lot is known full for the window. A replay costs nothing
// more, and is not limited: refusing it would leave the driver without the
// hold the first attempt made. A lot known full answers 409 at once (after
// a read of the key in Postgres, shared with the requests asking at the same
// moment), without queueing for the lot and without its limits: a driver in
// a rush learns there is no spot and stops, rather than being told to come
// back to learn it. Everything else that costs the database asks the
// client's limit first and, before it queues for the lot, the lot's: a lot
// this replica has not seen yet is read from Postgres only after the
// client's limit. A retry of a request that got in is not limited either.
func (s *Service) Hold(ctx context.Context, key string, req HoldRequest, limits Limits) (Response, error) {
	hash := req.hash()

	lot, known := s.cachedLot(req.LotID)
	var full bool
	var markFull func(int)
	var adm cloud.Admission
	leased := false
	if s.Guard != nil {
		// Availability only for a lot known to exist (a lookup makes keys
		// in Redis) and a request for any spot: a window full in the cache
		// is full for any spot, and the others ask Postgres which spot is
		// free.
		availability := known && req.SpotID == ""
		var stored cloud.StoredResponse
		var ok bool
		a, can := s.Guard.(cloud.Admitter)
		calm := can && known && limits.Refused != nil && !s.hot(req.LotID)
		switch {
		case calm && !s.fullSeen(req.LotID) && a.Leased(req.LotID, limits.ClientID):
			// The calmest path: this replica holds a leased token of
			// each limit, and the lot is in no rush, so nothing is
			// asked of Redis before the write. Postgres, where the key
			// is written with the hold, answers a replay byte for byte
			// (see hold for what it costs), and a full window, which
			// makes the lot hot and keeps it off this path for fullFor,
			// so its next requests learn a full window from Redis. Only
			// a replay Postgres cannot answer needs Redis' copy: see
			// replayStored.
			leased = true
			adm = cloud.Admission{Asked: true, Allowed: true}
		case calm:
			// The calm path: the limits in the same round trip, asked
			// by the guard in the same order as below. A lot in a rush
			// takes the path below, whose reads cost Redis a fraction
			// of a script for every driver told 409.
			adm = a.Admit(ctx, key, req.LotID, req.StartsAt, req.EndsAt, availability, limits.ClientID)
			stored, ok, full, markFull = adm.Stored, adm.Replay, adm.Full, adm.MarkFull
		default:
			stored, ok, full, markFull = s.Guard.Peek(ctx, key, req.LotID, req.StartsAt, req.EndsAt, availability)
		}
		if ok {
			if string(stored.RequestHash) != string(hash) {
				return Response{}, cloud.Errorf(cloud.EIdempotencyReused, "this Idempotency-Key was used with another request")
			}
			idempotentReplays.WithLabelValues("redis").Inc()
			return Response{Status: stored.Status, Body: stored.Body, Replayed: true}, nil
		}
	}
	if !known {
		if err := allow(ctx, limits.Client); err != nil {
			return Response{}, err
		}
		var err error
		if lot, err = s.Lot(ctx, req.LotID); err != nil {
			if cloud.ErrorCode(err) == cloud.ENotFound {
				return Response{}, &cloud.Error{Code: cloud.ENotFound, Field: "lot_id", Message: cloud.ErrorMessage(err)}
			}
			return Response{}, err
		}
	}

	retry := false
	if full {
		// A lot known full answers 409 at once, unless this is a retry of
		// a request that got in before the lot filled, whose answer Redis
		// did not have: an indexed read, no lock, shared with the requests
		// asking at the same moment, tells. Nothing is stored under the
		// key for the quick 409, so a retry asks again and may find a spot
		// that came free.
		if lot.Closed {
			// A closed lot is cached full (it has no spot to give): say
			// why, as the store would.
			holdConflicts.WithLabelValues(cloud.ELotClosed).Inc()
			return Response{}, errLotClosed
		}
		s.markHot(req.LotID)
		s.markFullSeen(req.LotID)
		seen, err := s.keyChecks.Do(ctx, key)
		if err == nil && !seen {
			holdConflicts.WithLabelValues(cloud.ENoAvailability).Inc()
			return Response{}, errNoAvailability
		}
		retry = seen
	}
	if !retry {
		if err := s.allowBoth(ctx, known, adm, limits); err != nil {
			return Response{}, err
		}
	}

	resp, err := s.write(ctx, key, hash, lot, req, markFull, retry)
	if err != nil && leased {
		return s.replayStored(ctx, key, hash, req, err)
	}
	return resp, err
}

// replayStored answers a leased request that was not served (err: the
// database away, the request's time up, or the lot's queue full) with the
// response Redis holds under its key, if any: the replay Redis would have
// answered before any of that on the other paths. Any other error is err.
func (s *Service) replayStored(ctx context.Context, key string, hash []byte, req HoldRequest, err error) (Response, error) {
	switch cloud.ErrorCode(err) {
	case cloud.EUnavailable, cloud.EInternal, cloud.ERateLimited:
	default:
		return Response{}, err
	}
	// The guard bounds its own call; a request whose context ended can
	// still be answered if its client is there to read it.
	stored, ok, _, _ := s.Guard.Peek(context.WithoutCancel(ctx), key, req.LotID, req.StartsAt, req.EndsAt, false)
	if !ok {
		return Response{}, err
	}
	if string(stored.RequestHash) != string(hash) {
		return Response{}, cloud.Errorf(cloud.EIdempotencyReused, "this Idempotency-Key was used with another request")
	}
	idempotentReplays.WithLabelValues("redis").Inc()
	return Response{Status: stored.Status, Body: stored.Body, Replayed: true}, nil
}

// write queues for the lot and makes the hold; retry says the request is a
// retry of one that got in before the window filled.
func (s *Service) write(ctx context.Context, key string, hash []byte, lot cloud.Lot, req HoldRequest, markFull func(int), retry bool) (Response, error) {
	leave, err := s.enter(ctx, lot.ID)
	if err != nil {
		return Response{}, err
	}
	defer leave()

	// Three rounds at most: another only when a stale key was found whose
	// hold has lapsed, and was deleted so this request can start afresh,
	// or when the lot's rate changed since this replica read it.
	for range 3 {
		resp, again, err := s.hold(ctx, key, hash, lot, req, markFull, s.Guard != nil && !retry)
		if errors.Is(err, errRateChanged) {
			s.forgetLot(lot.ID)
			if lot, err = s.Lot(ctx, lot.ID); err != nil {
				return Response{}, err
			}
			continue
		}
		if !again {
			return resp, err
		}
	}
	return Response{}, cloud.Errorf(cloud.EIdempotencyInUse, "a request with this Idempotency-Key is in progress")
}

// hold makes one attempt; markFull, when not nil, records in the cache
// that the window is full. fresh says the key is not taken to have been
// used: Redis had no answer stored under it, or was not asked (a request
// on leased tokens, on a lot in no rush). A fresh request on a calm lot
// has its Checkout Session made before the write; were it a retry after
// all, Postgres finds the key and replays the first answer, and the
// session made for the retry is expired unused (discardSession): nobody
// was given its address, so nobody can pay it. That costs a retry two
// calls to the provider, which Redis' word would have spared; a retry is
// rare, the round trip asked of every request on its way in is not.
func (s *Service) hold(ctx context.Context, key string, hash []byte, lot cloud.Lot, req HoldRequest, markFull func(int), fresh bool) (resp Response, again bool, err error) {
	id := uuid.NewString()
	price, err := cloud.Price(lot.HourlyRate, req.StartsAt, req.EndsAt)
	if err != nil {
		return Response{}, false, err
	}
	// Without a payment provider, or with nothing to pay (a free lot: the
	// store makes it CONFIRMED at once), the hold is the whole answer: its
	// key is stored done in the same transaction, one round trip in all.
	final := 0
	if s.Payments == nil || price.Amount == 0 {
		final = http.StatusCreated
	}
	token, tokenHash, err := NewAccessToken()
	if err != nil {
		return Response{}, false, err
	}
	// On a calm lot the Checkout Session is made first, so that the hold
	// is final as it commits: the session goes on the row as it is
	// inserted, and one transaction does what took two (the second one
	// rewrote the fresh row and every one of its indexes, the two GiST
	// ones among them, to add the session). The call to the provider holds
	// nothing shared: no lot row lock, no transaction, only this request's
	// place among its lot's requests in flight. The hold is made first,
	// as before, on a lot in a rush (most of its requests find no spot,
	// and a session made for each would be a call to the provider for
	// nothing), and for a key not known fresh: without Redis' word that
	// no answer is stored under it, the request may be a retry, which
	// Postgres answers with no call to the provider at all.
	var sess cloud.Session
	if final == 0 && fresh && !s.hot(lot.ID) {
		exp := s.Now().Add(s.HoldTTL)
		if sess, err = s.Payments.CreateCheckoutSession(ctx, checkout(lot, id, req.StartsAt, req.EndsAt, price, exp)); err != nil {
			s.Log.Warn("checkout session failed; no hold made", "lot", lot.ID, "err", err)
			return Response{}, false, checkoutError(err)
		}
		final = http.StatusCreated
	}
	out, err := s.holdGroup(lot.ID).Do(ctx, cloud.HoldParams{
		ID: id, LotID: lot.ID, SpotID: req.SpotID, Plate: req.Plate,
		StartsAt: req.StartsAt, EndsAt: req.EndsAt, HoldTTL: s.HoldTTL, Price: price,
		Key: key, RequestHash: hash, Lease: s.Lease, ConflictBody: noAvailabilityBody,
		FinalStatus: final, AccessToken: token, AccessTokenHash: tokenHash, Rate: lot.HourlyRate,
		Session: sess,
	})
	if err == nil {
		err = out.Err
	}
	if err != nil {
		// Whether the hold committed is not known (the answer may have
		// been lost with the connection): its session stays, for the
		// retry that may replay it. If it did not, nobody has the
		// session's address, and the provider expires it.
		return Response{}, false, err
	}
	res := out.HoldResult
	if res.Outcome != cloud.HoldHeld && sess.ID != "" {
		s.discardSession(ctx, id, sess)
	}
	switch res.Outcome {
	case cloud.HoldKeyExists:
		return s.existingKey(ctx, key, hash, lot, req)
	case cloud.HoldUnknownSpot:
		holdConflicts.WithLabelValues(cloud.EInvalid).Inc()
		return Response{}, false, cloud.FieldError("spot_id", "lot has no spot %q", req.SpotID)
	case cloud.HoldNoAvailability:
		holdConflicts.WithLabelValues(cloud.ENoAvailability).Inc()
		s.markHot(lot.ID)
		s.markFullSeen(lot.ID)
		if markFull != nil {
			markFull(lot.TotalSpots)
		}
		resp := Response{Status: http.StatusConflict, Body: noAvailabilityBody}
		if !s.savedInBatch() {
			s.saveResponse(ctx, key, hash, resp)
		}
		return resp, false, nil
	case cloud.HoldLotClosed:
		holdConflicts.WithLabelValues(cloud.ELotClosed).Inc()
		s.forgetLot(lot.ID)
		return Response{}, false, errLotClosed
	case cloud.HoldRateChanged:
		return Response{}, false, errRateChanged
	case cloud.HoldHeld:
	default:
		return Response{}, false, fmt.Errorf("hold: unexpected outcome %q", res.Outcome)
	}
	holdsCreated.Inc() // and the batch's writer has invalidated the lot
	r := heldReservation(id, lot.ID, req, price, res, token, sess)
	if final != 0 {
		body := out.body // the same bytes, encoded by the batch's writer to store them
		if body == nil {
			if body, err = holdBody(r); err != nil {
				return Response{}, false, err
			}
		}
		resp := Response{Status: final, Body: body, ID: r.ID}
		if !s.savedInBatch() {
			s.saveResponse(ctx, key, hash, resp)
		}
		return resp, false, nil
	}
	resp, err = s.handOff(ctx, key, hash, lot, r)
	return resp, false, err
}

// heldReservation is the reservation a hold made, as its 201 tells it:
// with the session made before it, if one was.
func heldReservation(id, lotID string, req HoldRequest, price cloud.Money, res cloud.HoldResult, token string, sess cloud.Session) cloud.Reservation {
	r := cloud.Reservation{
		ID: id, Status: madeAs(price), LotID: lotID, SpotID: res.SpotID, Plate: req.Plate,
		StartsAt: req.StartsAt, EndsAt: req.EndsAt, HoldExpiresAt: res.HoldExpiresAt, Price: price,
		CreatedAt: res.CreatedAt, UpdatedAt: res.CreatedAt, AccessToken: token,
	}
	if sess.ID != "" {
		r.Payment = payment(sess)
	}
	return r
}

// madeAs is the status a hold is made with: CONFIRMED when there is nothing
// to pay (as parkgate_hold decides it), else PENDING.
func madeAs(price cloud.Money) cloud.Status {
	if price.Amount == 0 {
		return cloud.StatusConfirmed
	}
	return cloud.StatusPending
}

// freeHold is the body of a hold with nothing to pay: "payment":null says
// so, where a hold made without a payment provider has no payment field.
type freeHold struct {
	cloud.Reservation
	Payment *cloud.Payment `json:"payment"`
}

// holdBody is the 201 body of a hold: the reservation as it was made,
// PENDING (CONFIRMED when free) and never updated, whatever has happened to
// it since. A replay rebuilds it from the row; only columns that never
// change go in, so the rebuilt body is the first one byte for byte. The
// access token is the caller's to set: only the hold and its key know it.
func holdBody(r cloud.Reservation) ([]byte, error) {
	r.Status = madeAs(r.Price)
	r.UpdatedAt = r.CreatedAt
	r.Refund, r.Overstay, r.AccessCode = nil, nil, ""
	var v any = r
	if r.Status == cloud.StatusConfirmed {
		r.Payment = nil
		v = freeHold{Reservation: r}
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode reservation: %w", err)
	}
	return body, nil
}

// allowBoth asks the client's limit and then the lot's, unless Admit
// asked them already; the client's only if the lot is known, since for a
// lot not known it was asked before the lot was read.
func (s *Service) allowBoth(ctx context.Context, known bool, adm cloud.Admission, limits Limits) error {
	if adm.Asked {
		if !adm.Allowed {
			return limits.Refused(adm.RetryAfter)
		}
		return nil
	}
	if known {
		if err := allow(ctx, limits.Client); err != nil {
			return err
		}
	}
	return allow(ctx, limits.Lot)
}

func allow(ctx context.Context, limit func(context.Context) error) error {
	if limit == nil {
		return nil
	}
	return limit(ctx)
}
