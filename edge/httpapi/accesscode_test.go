package httpapi_test

import (
	"testing"

	"github.com/parkgate/parkgate/edge/httpapi"
)

// TestAccessCodes: POST /v1/access-codes takes the camera's credential and
// the body rules of a plate read, and answers like one: a code that does
// not verify is a recorded deny, invalid_code, never an error.
func TestAccessCodes(t *testing.T) {
	b := setup(t, func(c *httpapi.Config) { c.CameraToken = "cam-secret" })
	auth := []string{"Authorization", "Bearer cam-secret"}
	if status, out := b.do(t, "POST", "/v1/access-codes", `{"gate_id":"entry-1","code":"x"}`); status != 401 {
		t.Errorf("no camera token: %d %v", status, out)
	}
	status, out := b.do(t, "POST", "/v1/access-codes", `{"gate_id":"entry-1","code":"AQAAAA"}`, auth...)
	if status != 200 || out["decision"] != "deny" || out["reason"] != "invalid_code" || out["event_id"] == "" {
		t.Errorf("forged: %d %v", status, out)
	}
	for name, body := range map[string]string{
		"NoCode":       `{"gate_id":"entry-1"}`,
		"NoGate":       `{"code":"AQAAAA"}`,
		"UnknownField": `{"gate_id":"entry-1","code":"AQAAAA","plate":"AB1"}`,
	} {
		if status, out := b.do(t, "POST", "/v1/access-codes", body, auth...); status != 400 {
			t.Errorf("%s: %d %v", name, status, out)
		}
	}
	if status, out := b.do(t, "POST", "/v1/access-codes", `{"gate_id":"nope","code":"AQAAAA"}`, auth...); status != 404 {
		t.Errorf("unknown gate: %d %v", status, out)
	}
}
