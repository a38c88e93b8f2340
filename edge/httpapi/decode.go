package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/edge"
)

// MaxBodyBytes bounds every request body: a plate read is about 120 bytes,
// so 8 KiB leaves room for any camera's extras without letting a client make
// the gate computer buffer megabytes.
const MaxBodyBytes = 8 << 10

// statusError is a client error whose HTTP status is not the one its code
// maps to: an oversize body is 413 and a body that never arrived is 408,
// both still invalid_request.
type statusError struct {
	status int
	err    *edge.Error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// plateReadRequest is the camera's body. Confidence is a pointer so a missing
// value is told apart from 0.
type plateReadRequest struct {
	GateID     string   `json:"gate_id"`
	Plate      string   `json:"plate"`
	Confidence *float64 `json:"confidence"`
	CapturedAt string   `json:"captured_at"`
}

// parsePlateRead decodes and checks a camera's body; w may be nil (the fuzz
// target has none). The plate is left as sent: normalising it is the agent's.
func parsePlateRead(w http.ResponseWriter, body io.ReadCloser) (edge.PlateRead, error) {
	var req plateReadRequest
	if err := decode(w, body, &req); err != nil {
		return edge.PlateRead{}, err
	}
	switch {
	case req.GateID == "":
		return edge.PlateRead{}, edge.Errorf(edge.EInvalid, "gate_id", "gate_id is required")
	case req.Plate == "":
		return edge.PlateRead{}, edge.Errorf(edge.EInvalid, "plate", "plate is required")
	case req.Confidence == nil:
		return edge.PlateRead{}, edge.Errorf(edge.EInvalid, "confidence", "confidence is required")
	}
	read := edge.PlateRead{GateID: req.GateID, Plate: req.Plate, Confidence: *req.Confidence}
	if req.CapturedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, req.CapturedAt)
		if err != nil {
			return edge.PlateRead{}, edge.Errorf(edge.EInvalid, "captured_at", "captured_at must be RFC 3339")
		}
		read.CapturedAt = t
	}
	return read, nil
}

// decode reads one JSON object and nothing after it; what is wrong with the
// body is the client's fault and comes back as an invalid_request error, with
// the field where one is to blame.
func decode(w http.ResponseWriter, body io.ReadCloser, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	// A second value, or garbage, after the object is refused: a proxy or
	// camera that concatenates bodies must not have half of them ignored.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var se *statusError
		if err != nil && errors.As(bodyError(err), &se) {
			return se
		}
		return edge.Errorf(edge.EInvalid, "", "trailing data after the JSON object")
	}
	return nil
}

// errEmptyBody is decode's answer to a body with nothing in it, which some
// calls accept.
var errEmptyBody = edge.Errorf(edge.EInvalid, "", "empty body")

func isEmptyBody(err error) bool { return errors.Is(err, errEmptyBody) }

func bodyError(err error) error {
	var (
		tooBig  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &tooBig):
		return &statusError{http.StatusRequestEntityTooLarge,
			edge.Errorf(edge.EInvalid, "", "body larger than %d bytes", MaxBodyBytes)}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &statusError{http.StatusRequestTimeout, edge.Errorf(edge.EInvalid, "", "body not received in time")}
	case errors.Is(err, io.EOF):
		return errEmptyBody
	case errors.As(err, &typeErr) && typeErr.Field == "":
		// The body itself is the wrong kind (a list, a string, a number).
		return edge.Errorf(edge.EInvalid, "", "the body must be a JSON object")
	case errors.As(err, &typeErr):
		return edge.Errorf(edge.EInvalid, typeErr.Field, "%s has the wrong type", typeErr.Field)
	}
	if field, ok := unknownField(err); ok {
		return edge.Errorf(edge.EInvalid, field, "unknown field %q", field)
	}
	return edge.Errorf(edge.EInvalid, "", "body is not valid JSON")
}

// unknownField digs the name out of encoding/json's error for a field
// DisallowUnknownFields refused; the package has no typed error for it.
func unknownField(err error) (string, bool) {
	_, quoted, ok := strings.Cut(err.Error(), "unknown field ")
	if !ok {
		return "", false
	}
	name, uerr := strconv.Unquote(quoted)
	if uerr != nil {
		return "", true
	}
	return name, true
}
