package httpapi_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/parkgate/parkgate/edge/httpapi"
)

const read = `{"gate_id":"entry-1","plate":"AB123C","confidence":0.93}`

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestCameraToken is finding 10's second half: plate reads needed no
// credential at all.
func TestCameraToken(t *testing.T) {
	b := setup(t, func(c *httpapi.Config) { c.CameraToken = "cam-secret" })
	for _, tt := range []struct {
		name, auth string
		status     int
	}{
		{"Missing", "", 401},
		{"WrongBearer", "Bearer cam-secre", 401},
		{"OperatorTokenIsNoCameraToken", "Bearer op-secret", 401},
		{"WrongBasic", basic("camera", "nope"), 401},
		{"BasicTokenAsUser", basic("cam-secret", ""), 401},
		{"Bearer", "Bearer cam-secret", 200},
		{"BearerLowerCase", "bearer cam-secret", 200},
		{"Basic", basic("camera", "cam-secret"), 200},
		{"BasicNoUser", basic("", "cam-secret"), 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			status, out := b.do(t, "POST", "/v1/plate-reads", read, hdr...)
			if status != tt.status {
				t.Fatalf("%d %v, want %d", status, out, tt.status)
			}
			if e, _ := out["error"].(map[string]any); tt.status == 401 && e["code"] != "unauthorized" {
				t.Fatalf("%v", out)
			}
		})
	}
	// No camera token configured: reads stay open, as on a closed camera network.
	if status, out := setup(t).do(t, "POST", "/v1/plate-reads", read); status != 200 {
		t.Fatalf("without a camera token: %d %v", status, out)
	}
}

// TestOperatorCalls is finding 10: the presence reset was open to anyone
// when no operator token was set.
func TestOperatorCalls(t *testing.T) {
	disabled := setup(t, func(c *httpapi.Config) { c.OperatorToken = "" })
	enabled := setup(t)
	calls := []struct{ path, body string }{
		{"/v1/presence/AB123C/reset", ""},
		{"/v1/gates/entry-1/open", `{"reason":"test"}`},
	}
	for _, c := range calls {
		for _, auth := range []string{"", "Bearer op-secret"} {
			status, out := disabled.do(t, "POST", c.path, c.body, "Authorization", auth)
			if e, _ := out["error"].(map[string]any); status != 403 || e["code"] != "operator_disabled" {
				t.Fatalf("%s with no operator token configured, auth %q: %d %v", c.path, auth, status, out)
			}
		}
		for _, auth := range []string{"", "Bearer op-secre", "Bearer op-secretX", basic("op", "op-secret"), "op-secret"} {
			status, out := enabled.do(t, "POST", c.path, c.body, "Authorization", auth)
			if e, _ := out["error"].(map[string]any); status != 401 || e["code"] != "unauthorized" {
				t.Fatalf("%s with auth %q: %d %v", c.path, auth, status, out)
			}
		}
	}
	if disabled.entry.Read() == gpio.High || enabled.entry.Read() == gpio.High {
		t.Fatal("a refused remote open moved the barrier")
	}
}

func TestRemoteOpen(t *testing.T) {
	b := setup(t)
	op := []string{"Authorization", "Bearer op-secret"}
	status, out := b.do(t, "POST", "/v1/gates/entry-1/open", `{"reason":"driver at intercom, camera fogged"}`, op...)
	if status != 200 || out["decision"] != "open" || out["reason"] != "manual_override" || out["gate_id"] != "entry-1" ||
		out["note"] != "driver at intercom, camera fogged" || out["event_id"] == "" {
		t.Fatalf("remote open: %d %v", status, out)
	}
	if b.entry.Read() != gpio.High {
		t.Fatal("barrier not pulsed")
	}
	entries, err := b.store.Pending(10)
	if err != nil || len(entries) != 1 || !strings.Contains(string(entries[0].Payload), `"note":"driver at intercom, camera fogged"`) ||
		!strings.Contains(string(entries[0].Payload), `"reason":"manual_override"`) || entries[0].EventID != out["event_id"] {
		t.Fatalf("outbox %v %v", entries, err)
	}

	for _, tt := range []struct {
		name, path, body, code, field string
		status                        int
	}{
		{"UnknownGate", "/v1/gates/side-door/open", `{"reason":"x"}`, "not_found", "gate_id", 404},
		{"NoReason", "/v1/gates/entry-1/open", `{}`, "invalid_request", "reason", 400},
		{"BlankReason", "/v1/gates/entry-1/open", `{"reason":"  "}`, "invalid_request", "reason", 400},
		{"ControlInReason", "/v1/gates/entry-1/open", `{"reason":"a\u001b[2Jb"}`, "invalid_request", "reason", 400},
		{"LongReason", "/v1/gates/entry-1/open", `{"reason":"` + strings.Repeat("x", 201) + `"}`, "invalid_request", "reason", 400},
		{"UnknownField", "/v1/gates/entry-1/open", `{"reason":"x","gate":"exit-1"}`, "invalid_request", "gate", 400},
		{"NoBody", "/v1/gates/entry-1/open", ``, "invalid_request", "", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, out := b.do(t, "POST", tt.path, tt.body, op...)
			e, _ := out["error"].(map[string]any)
			if status != tt.status || e["code"] != tt.code || (tt.field != "" && e["field"] != tt.field) {
				t.Fatalf("%d %v", status, out)
			}
		})
	}
	if entries, _ := b.store.Pending(10); len(entries) != 1 {
		t.Fatalf("refused opens were recorded: %d events", len(entries))
	}
}

// TestStaleReadOverHTTP is finding 11 end to end: a read captured 3 h ago or
// stamped 2099 opened the barrier.
func TestStaleReadOverHTTP(t *testing.T) {
	b := setup(t)
	for _, at := range []string{time.Now().Add(-3 * time.Hour).Format(time.RFC3339), "2099-01-01T00:00:00Z"} {
		status, out := b.do(t, "POST", "/v1/plate-reads", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.93,"captured_at":"`+at+`"}`)
		if status != 200 || out["decision"] != "deny" || out["reason"] != "stale_read" {
			t.Fatalf("captured_at %s: %d %v", at, status, out)
		}
	}
	if b.entry.Read() == gpio.High {
		t.Fatal("a stale read opened the barrier")
	}
	if entries, _ := b.store.Pending(10); len(entries) != 2 {
		t.Fatalf("stale reads recorded %d events, want 2", len(entries))
	}
}
