package edge

import (
	"errors"
	"fmt"
)

// Error codes, shared with the HTTP API that maps them to statuses.
const (
	EInvalid          = "invalid_request"
	ENotFound         = "not_found"
	EUnsupportedMedia = "unsupported_media_type"
	EUnavailable      = "unavailable"
	EInternal         = "internal"
)

// Error is a domain error with a code a client can act on; Field names the
// input at fault, where there is one.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf makes an *Error.
func Errorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal
// for any other error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	}
	return EInternal
}
