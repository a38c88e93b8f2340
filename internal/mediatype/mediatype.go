// Package mediatype holds the one rule both HTTP APIs (the cloud's and the
// edge's) apply to a request body's Content-Type: JSON, or nothing said —
// many LPR cameras and simple clients send no Content-Type at all — and
// anything else refused with 415 by the caller.
package mediatype

import (
	"mime"
	"strings"
)

// IsJSON reports whether a Content-Type is absent or JSON, parameters
// (charset) aside: application/json or an application/…+json type.
func IsJSON(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
