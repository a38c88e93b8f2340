package httpapi

import (
	"net/http"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/internal/mediatype"
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
			r.URL.Path != webhookPath && !mediatype.IsJSON(r.Header.Get("Content-Type")) {
			writeError(w, r, s.Log, cloud.Errorf(cloud.EUnsupportedMedia,
				"the request body must be JSON (Content-Type: application/json)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
