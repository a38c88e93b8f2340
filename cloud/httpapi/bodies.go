package httpapi

import (
	"mime"
	"net/http"
	"strings"

	"github.com/parkgate/parkgate/cloud"
)

// webhookPath is exempt from the Content-Type rule: the body is Stripe's to
// shape, and its signature, not its label, is what is checked.
const webhookPath = "/v1/payments/webhook"

// jsonBodies refuses, with 415, a POST or PATCH body labelled as anything
// but JSON: a form post or a file upload is a client mistake, better named
// than parsed. An unlabelled body is read as JSON (the API takes nothing
// else, and plain HTTP clients often send none).
func (s *Server) jsonBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPost || r.Method == http.MethodPatch) && r.ContentLength != 0 &&
			r.URL.Path != webhookPath && !isJSON(r.Header.Get("Content-Type")) {
			writeError(w, r, s.Log, cloud.Errorf(cloud.EUnsupportedMedia,
				"the request body must be JSON (Content-Type: application/json)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isJSON reports whether a Content-Type is absent or JSON, parameters
// (charset) aside: application/json or a +json type.
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
