package httpapi

import (
	"net/http"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/internal/mediatype"
)

// jsonBodies refuses, with 415 unsupported_media_type, a POST body labelled
// as anything but JSON (DESIGN's input rule for every cloud and edge
// endpoint, as the cloud does it): a form post or text from a misconfigured
// camera is named as such instead of being parsed and acted on. An
// unlabelled body is read as JSON, since many cameras send no Content-Type.
func jsonBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut) &&
			r.ContentLength != 0 && !mediatype.IsJSON(r.Header.Get("Content-Type")) {
			writeError(w, edge.Errorf(edge.EUnsupportedMedia, "", "the request body must be JSON (Content-Type: application/json)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
