package stack

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"
)

// AnswerDropper is a network that delivers requests but loses the answers:
// it forwards each request to target, waits for the whole answer (so the
// server finishes its work undisturbed), and then closes the client's
// connection without a word. The client sees a broken connection and, if
// it is any good, retries with the same Idempotency-Key.
type AnswerDropper struct {
	target string
	client *http.Client
}

// NewAnswerDropper forwards to target, e.g. the cloud's base URL.
func NewAnswerDropper(target string) *AnswerDropper {
	return &AnswerDropper{target: target, client: &http.Client{Timeout: 30 * time.Second}}
}

func (d *AnswerDropper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	// Not the request's context: the phone hanging up must not cancel the
	// request on its way to the server.
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, d.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header = r.Header.Clone()
	if resp, err := d.client.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // no hijacking: abort the response instead
}
