package stack_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parkgate/parkgate/sim/stack"
)

func TestAnswerDropper(t *testing.T) {
	var got atomic.Int32
	var key atomic.Value
	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		key.Store(r.Header.Get("Idempotency-Key"))
		w.WriteHeader(http.StatusCreated)
	}))
	defer cloud.Close()
	lossy := httptest.NewServer(stack.NewAnswerDropper(cloud.URL))
	defer lossy.Close()

	req, _ := http.NewRequest(http.MethodPost, lossy.URL+"/v1/reservations", strings.NewReader(`{}`))
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the answer arrived: %s", resp.Status)
	}
	if got.Load() != 1 || key.Load() != "k1" {
		t.Fatalf("the server got %d requests, key %v; want the request delivered once with its key", got.Load(), key.Load())
	}
}
