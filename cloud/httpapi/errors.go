package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/parkgate/parkgate/cloud"
)

// StatusOf is the one mapping from error codes to HTTP statuses.
func StatusOf(err error) int {
	switch cloud.ErrorCode(err) {
	case "":
		return http.StatusOK
	case cloud.EInvalid, cloud.EIdempotencyMiss, cloud.EInvalidSignature:
		return http.StatusBadRequest
	case cloud.EUnauthorized:
		return http.StatusUnauthorized
	case cloud.ENotFound:
		return http.StatusNotFound
	case cloud.ENoAvailability, cloud.EIdempotencyInUse, cloud.EConflict, cloud.ENotCancellable, cloud.ENotExtendable,
		cloud.ELotClosed, cloud.ERefundExceeds:
		return http.StatusConflict
	case cloud.EIdempotencyReused:
		return http.StatusUnprocessableEntity
	case cloud.ERateLimited:
		return http.StatusTooManyRequests
	case cloud.EUnavailable:
		return http.StatusServiceUnavailable
	case cloud.EPaymentProvider:
		return http.StatusBadGateway
	case cloud.EUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	}
	return http.StatusInternalServerError
}

// tooLarge marks a body over the limit: still invalid_request, but 413.
type tooLarge struct{ error }

func (t tooLarge) Unwrap() error { return t.error }

func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if errors.Is(err, cloud.ErrStoreUnavailable) {
		// The store has said it is away: a retry in a moment may well work.
		log.Warn("database unreachable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
	}
	status := StatusOf(err)
	var tl tooLarge
	if errors.As(err, &tl) {
		status = http.StatusRequestEntityTooLarge
	}
	if status >= 500 && cloud.ErrorCode(err) == cloud.EInternal {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeRaw(w, status, cloud.MarshalError(err))
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write([]byte("\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeRaw(w, http.StatusInternalServerError, cloud.MarshalError(err))
		return
	}
	writeRaw(w, status, b)
}

// decode reads exactly one JSON object into v, refusing unknown fields and
// trailing data, and turns each failure into an invalid_request naming the
// field where one is at fault.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return cloud.FieldError("", "the body must hold one JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge{&cloud.Error{Code: cloud.EInvalid, Message: fmt.Sprintf("the body is larger than %d bytes", mbe.Limit)}}
	case errors.Is(err, io.EOF):
		return cloud.FieldError("", "the body is empty; a JSON object is required")
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return cloud.FieldError("", "malformed JSON: %v", err)
	case errors.As(err, &typ) && typ.Field == "":
		// The body itself is the wrong kind (a list, a string, a number).
		return cloud.FieldError("", "the body must be a JSON object")
	case errors.As(err, &typ):
		return cloud.FieldError(typ.Field, "%s must be a %s", typ.Field, jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return cloud.FieldError(f, "unknown field %q", f)
	}
	return cloud.FieldError("", "invalid JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "float64", "float32", "int", "int64", "int32", "uint", "uint64":
		return "number"
	case "bool":
		return "boolean"
	case "slice":
		return "list"
	}
	return "JSON " + k
}
