package cloud

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Error codes of the external contract. Adapters translate their failures to
// these; the HTTP layer maps each to a status in one place.
const (
	EInvalid           = "invalid_request"
	ENotFound          = "not_found"
	ENoAvailability    = "no_availability"
	EUnauthorized      = "unauthorized"
	EIdempotencyMiss   = "missing_idempotency_key"
	EIdempotencyReused = "idempotency_key_reused"
	EIdempotencyInUse  = "idempotency_key_in_use"
	ERateLimited       = "rate_limited"
	EInvalidSignature  = "invalid_signature"
	EUnavailable       = "unavailable"
	EPaymentProvider   = "payment_provider_error" // the provider refused the request (a 4xx)
	EUnsupportedMedia  = "unsupported_media_type" // a request body that is not JSON
	ENotCancellable    = "not_cancellable"        // a driver's cancel outside the lot's policy, or of a booking under way or over
	ENotExtendable     = "not_extendable"         // an extension of a booking not confirmed or checked in, or over
	ELotClosed         = "lot_closed"             // a hold on a lot its operator closed
	ERefundExceeds     = "refund_exceeds_payment" // a refund of more than is left of what was paid
	EConflict          = "conflict"
	EInternal          = "internal"
)

// ErrStoreUnavailable is in the chain of a store error that says the
// database could not be reached or went away mid-statement: "retry", not
// "internal error". A hold whose commit may or may not have happened is
// settled by the client's retry with the same key: the hold's answer says
// so; no other answer names the key (the request had none).
var ErrStoreUnavailable = &Error{Code: EUnavailable, Message: "the database cannot be reached; retry in a moment"}

// Error is a failure the caller can act on: a code from the list above, a
// message for people, and the request field at fault where there is one.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an invalid_request error naming the field at fault.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal
// for any other error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the message of the first *Error in err's chain, and a
// generic text for others so internals never leak to clients.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorField returns the field of the first *Error in err's chain.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

// MarshalError renders err in the contract's envelope,
// {"error":{"code":…,"message":…,"field":…}}. It is the one place that
// shape is written, so a stored response and a fresh one match byte for byte.
func MarshalError(err error) []byte {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Field = ErrorCode(err), ErrorMessage(err), ErrorField(err)
	out, _ := json.Marshal(b)
	return out
}
