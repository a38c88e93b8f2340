package stripefake

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// idemTTL is how long Stripe keeps an idempotency key.
const idemTTL = 24 * time.Hour

// idemScope scopes keys per secret key, as Stripe scopes them per account and
// mode: two callers with different keys never collide.
type idemScope struct{ apiKey, key string }

type idemEntry struct {
	endpoint string // "POST /v1/refunds"
	// params is the first request's body, compared with a retry's only when there
	// is one: encoding the parameters canonically on every request was a
	// tenth of the stand-in's handler in a benchmark making a session per
	// hold, and a string keeps a day of keys off the collector's path,
	// where a url.Values was a map and a slice per parameter.
	params  string
	created time.Time
	done    bool
	status  int
	body    []byte
	reqID   string
}

// serveIdempotent applies Stripe's rules: a finished request with the same
// key, endpoint and parameters is replayed; the same key on a different
// endpoint or with different parameters is an idempotency_error; a key whose
// first request is still running answers 409. Only successful results are
// saved, a simplification of Stripe, which also saves results of requests
// that failed after they started executing.
func (f *Fake) serveIdempotent(w http.ResponseWriter, req *apiRequest, params string, h apiHandler) {
	scope := idemScope{apiKey: req.key, key: req.idemKey}
	endpoint := req.r.Method + " " + req.r.URL.Path
	if len(req.idemKey) > 255 {
		writeError(w, invalid("", "", "Idempotency keys can be at most 255 characters long."))
		return
	}

	f.mu.Lock()
	now := f.now()
	f.pruneIdemLocked(now)
	e, ok := f.idem[scope]
	if ok && now.Sub(e.created) >= idemTTL {
		delete(f.idem, scope)
		ok = false
	}
	if ok {
		// A copy taken under the lock: the first request may finish (and
		// fill the entry) while this one answers.
		e := *e
		f.mu.Unlock()
		switch {
		case e.endpoint != endpoint:
			writeError(w, &apiError{status: http.StatusBadRequest, Type: "idempotency_error",
				Message: fmt.Sprintf("Keys for idempotent requests can only be used for the same endpoint they were first used for ('%s' vs '%s'). Try using a key other than '%s' if you meant to execute a different request.",
					endpoint, e.endpoint, req.idemKey)})
		case !sameParams(e.params, params):
			writeError(w, &apiError{status: http.StatusBadRequest, Type: "idempotency_error",
				Message: fmt.Sprintf("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.",
					req.idemKey)})
		case !e.done:
			w.Header().Set("Stripe-Should-Retry", "true")
			writeError(w, &apiError{status: http.StatusConflict, Type: "invalid_request_error", Code: "idempotency_key_in_use",
				Message: "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through). Please try again later."})
		default:
			w.Header().Set("Idempotent-Replayed", "true")
			w.Header().Set("Original-Request", e.reqID)
			writeRaw(w, e.status, e.body)
		}
		return
	}
	e = &idemEntry{endpoint: endpoint, params: params, created: now, reqID: req.reqID}
	f.idem[scope] = e
	f.mu.Unlock()

	status, body := respond(h(req))

	f.mu.Lock()
	if status < 300 {
		e.done, e.status, e.body = true, status, body
	} else if f.idem[scope] == e {
		delete(f.idem, scope)
	}
	f.mu.Unlock()
	writeRaw(w, status, body)
}

// pruneIdemLocked drops expired keys at most once per fake-clock minute, so a
// long simulation does not grow without bound.
func (f *Fake) pruneIdemLocked(now time.Time) {
	if now.Sub(f.idemPruned) < time.Minute {
		return
	}
	f.idemPruned = now
	for k, e := range f.idem {
		if e.done && now.Sub(e.created) >= idemTTL {
			delete(f.idem, k)
		}
	}
}

// sameParams says whether two request bodies carry the same parameters:
// the same names, each with the same values in order, whatever order the
// names come in. parseForm took both, so both parse.
func sameParams(a, b string) bool {
	if a == b {
		return true
	}
	va, errA := url.ParseQuery(a)
	vb, errB := url.ParseQuery(b)
	return errA == nil && errB == nil && maps.EqualFunc(va, vb, slices.Equal[[]string])
}
