package httpapi

import (
	"mime"
	"net/http"
	"strings"

	"github.com/parkgate/parkgate/edge"
)

// jsonBodies refuses, with 415 unsupported_media_type, a POST body labelled
// as anything but JSON (DESIGN's input rule for every cloud and edge
// endpoint, as the cloud does it): a form post or text from a misconfigured
// camera is named as such instead of being parsed and acted on. An
// unlabelled body is read as JSON, since many cameras send no Content-Type.
func jsonBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut) &&
			r.ContentLength != 0 && !isJSON(r.Header.Get("Content-Type")) {
			writeError(w, edge.Errorf(edge.EUnsupportedMedia, "", "the request body must be JSON (Content-Type: application/json)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isJSON reports whether a Content-Type is absent or JSON, parameters
// (charset) aside: application/json or an application/…+json type.
func isJSON(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
