package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Who may call what (DESIGN "Edge: who may do what"). Cameras sit on the
// lot's network, often on the same switch as anything a visitor could plug
// in, so a camera token makes reads from anything else worthless; operator
// calls move barriers and undo anti-passback, so they need their own token
// and are off entirely until one is configured.

// camera guards the calls a camera makes. With no camera token configured
// they stay open, as before: many lots wire cameras on a closed segment.
func (s *server) camera(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.CameraToken != "" && !cameraAuthorized(r, s.CameraToken) {
			// Many cameras can only send Basic, and only after a challenge.
			w.Header().Add("WWW-Authenticate", `Basic realm="parkedge", charset="UTF-8"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="parkedge"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: errorDetail{Code: "unauthorized", Message: "camera token required"}})
			return
		}
		next(w, r)
	}
}

// operator guards the calls only a person at the lot's console may make.
func (s *server) operator(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.OperatorToken == "" {
			writeJSON(w, http.StatusForbidden, errorBody{Error: errorDetail{Code: "operator_disabled",
				Message: "operator calls are off: no operator token is configured (PARKGATE_OPERATOR_TOKEN)"}})
			return
		}
		if tok, ok := bearer(r); !ok || !tokenEqual(tok, s.OperatorToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parkedge"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: errorDetail{Code: "unauthorized", Message: "operator token required"}})
			return
		}
		next(w, r)
	}
}

func cameraAuthorized(r *http.Request, token string) bool {
	if tok, ok := bearer(r); ok {
		return tokenEqual(tok, token)
	}
	if _, pass, ok := r.BasicAuth(); ok {
		// Any user name: cameras differ in what they let one set.
		return tokenEqual(pass, token)
	}
	return false
}

// bearer returns the token of an "Authorization: Bearer ..." header; the
// scheme is case-insensitive (RFC 9110).
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// tokenEqual compares in constant time. Hashing first makes the time
// independent of the lengths too, which subtle.ConstantTimeCompare is not.
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}
