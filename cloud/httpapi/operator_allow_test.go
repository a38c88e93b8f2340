package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/parkgate/parkgate/cloud/httpapi"
)

// TestMethodNotAllowedNamesMethods: a 405 names the methods the path does
// take, so a client learns that a lot is read with GET and changed with
// PATCH, and a reservation is never PATCHed.
func TestMethodNotAllowedNamesMethods(t *testing.T) {
	h := (&httpapi.Server{}).Handler()
	for path, want := range map[string]string{
		"/v1/lots/7b2f5d0e-55aa-4c39-9d7e-1a2b3c4d5e6f":         "GET, PATCH",
		"/v1/reservations/7b2f5d0e-55aa-4c39-9d7e-1a2b3c4d5e6f": "GET",
		"/v1/reservations": "POST",
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, path, nil))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != want {
			t.Errorf("PUT %s: %d Allow %q, want 405 %q", path, w.Code, w.Header().Get("Allow"), want)
		}
	}
}
