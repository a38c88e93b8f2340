package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/edge/httpapi"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/edge/hw/hwtest"
	"github.com/parkgate/parkgate/protocol"
)

type bundle struct {
	srv   *httptest.Server
	entry *hwtest.Pin
	store *bolt.Store
}

// setup serves the API with an operator token "op-secret" and no camera
// token; opts change the configuration before the server starts.
func setup(t *testing.T, opts ...func(*httpapi.Config)) *bundle {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "edge.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Now()
	if _, err := s.Apply([]protocol.ReservationChange{{V: 1, LotID: "lot-1", Seq: 1, Op: protocol.OpUpsert,
		Reservation: protocol.Reservation{ID: "r1", Plate: "AB123C", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), Status: protocol.StatusConfirmed}}}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics, err := httpapi.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	entry, exit := hwtest.NewPin("entry-1.barrier"), hwtest.NewPin("exit-1.barrier")
	eb, _ := hw.NewBarrier(entry, time.Hour)
	xb, _ := hw.NewBarrier(exit, time.Hour)
	agent, err := edge.NewAgent(edge.Config{LotID: "lot-1", Store: s, Policy: edge.DefaultPolicy(), Observer: metrics,
		Gates: []edge.GateConfig{
			{Gate: edge.Gate{ID: "entry-1", Direction: "entry"}, Barrier: eb},
			{Gate: edge.Gate{ID: "exit-1", Direction: "exit"}, Barrier: xb},
		}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{LotID: "lot-1", Agent: agent, Gatherer: reg, OperatorToken: "op-secret"}
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewServer(httpapi.NewHandler(cfg))
	t.Cleanup(srv.Close)
	return &bundle{srv: srv, entry: entry, store: s}
}

func (b *bundle) do(t *testing.T, method, path, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, out
}

func TestPlateReads(t *testing.T) {
	b := setup(t)
	status, out := b.do(t, "POST", "/v1/plate-reads", `{"gate_id":"entry-1","plate":"ab-123 c","confidence":0.93,"captured_at":"`+
		time.Now().Add(-time.Second).Format(time.RFC3339Nano)+`"}`)
	if status != 200 || out["decision"] != "open" || out["reason"] != "valid" || out["reservation_id"] != "r1" || out["fuzzy"] != false {
		t.Fatalf("open: %d %v", status, out)
	}
	if _, ok := out["decided_in_us"].(float64); !ok {
		t.Fatalf("no decided_in_us: %v", out)
	}
	if b.entry.Read() != gpio.High {
		t.Fatal("barrier not pulsed")
	}
	status, out = b.do(t, "POST", "/v1/plate-reads", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.93}`)
	if status != 200 || out["decision"] != "deny" || out["reason"] != "already_inside" {
		t.Fatalf("anti-passback: %d %v", status, out)
	}

	for _, tt := range []struct {
		name, body, code, field string
		status                  int
	}{
		{"NotJSON", `{`, "invalid_request", "", 400},
		{"Empty", ``, "invalid_request", "", 400},
		{"NoGate", `{"plate":"AB123C","confidence":0.9}`, "invalid_request", "gate_id", 400},
		{"NoPlate", `{"gate_id":"entry-1","confidence":0.9}`, "invalid_request", "plate", 400},
		{"NoConfidence", `{"gate_id":"entry-1","plate":"AB123C"}`, "invalid_request", "confidence", 400},
		{"ConfidenceType", `{"gate_id":"entry-1","plate":"AB123C","confidence":"high"}`, "invalid_request", "confidence", 400},
		{"ConfidenceRange", `{"gate_id":"entry-1","plate":"AB123C","confidence":7}`, "invalid_request", "confidence", 400},
		{"BadPlate", `{"gate_id":"entry-1","plate":"AB!23","confidence":0.9}`, "invalid_request", "plate", 400},
		{"BadTime", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.9,"captured_at":"yesterday"}`, "invalid_request", "captured_at", 400},
		{"UnknownGate", `{"gate_id":"side-door","plate":"AB123C","confidence":0.9}`, "not_found", "gate_id", 404},
		// Finding 9: unknown fields and trailing data were accepted, and an
		// oversize body was answered 400 "not valid JSON".
		{"UnknownField", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.9,"colour":"red"}`, "invalid_request", "colour", 400},
		{"TrailingObject", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.9}{"gate_id":"exit-1"}`, "invalid_request", "", 400},
		{"TrailingGarbage", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.9} x`, "invalid_request", "", 400},
		{"Oversize", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.9,"pad":"` + strings.Repeat("x", 9<<10) + `"}`, "invalid_request", "", 413},
		{"OversizeWhitespace", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.9}` + strings.Repeat(" ", 9<<10), "invalid_request", "", 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, out := b.do(t, "POST", "/v1/plate-reads", tt.body)
			e, _ := out["error"].(map[string]any)
			if status != tt.status || e["code"] != tt.code || (tt.field != "" && e["field"] != tt.field) || e["message"] == "" {
				t.Fatalf("%d %v", status, out)
			}
		})
	}
}

func TestGatesResetHealthMetrics(t *testing.T) {
	b := setup(t)
	b.do(t, "POST", "/v1/plate-reads", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.93}`)

	status, out := b.do(t, "GET", "/v1/gates", "")
	gates, _ := out["gates"].([]any)
	if status != 200 || len(gates) != 2 {
		t.Fatalf("gates: %d %v", status, out)
	}
	g0 := gates[0].(map[string]any)
	last, _ := g0["last_decision"].(map[string]any)
	if g0["id"] != "entry-1" || g0["barrier"] != "open" || g0["state"] != "offline" || g0["sync_seq"] != float64(1) || last["decision"] != "open" {
		t.Fatalf("gate 0: %v", g0)
	}
	if g1 := gates[1].(map[string]any); g1["barrier"] != "closed" || g1["last_decision"] != nil {
		t.Fatalf("gate 1: %v", g1)
	}

	if status, _ := b.do(t, "POST", "/v1/presence/AB123C/reset", ""); status != 401 {
		t.Fatalf("reset without token: %d", status)
	}
	status, out = b.do(t, "POST", "/v1/presence/AB123C/reset", `{"gate_id":"entry-1"}`, "Authorization", "Bearer op-secret")
	if status != 200 || out["plate"] != "AB123C" || out["event_id"] == "" {
		t.Fatalf("reset: %d %v", status, out)
	}
	if status, out := b.do(t, "POST", "/v1/plate-reads", `{"gate_id":"entry-1","plate":"AB123C","confidence":0.93}`); out["decision"] != "open" {
		t.Fatalf("entry after reset: %d %v", status, out)
	}
	if status, out := b.do(t, "POST", "/v1/presence/AB!/reset", "", "Authorization", "Bearer op-secret"); status != 400 {
		t.Fatalf("reset of a bad plate: %d %v", status, out)
	}

	if status, out := b.do(t, "GET", "/healthz", ""); status != 200 || out["status"] != "ok" {
		t.Fatalf("healthz: %d %v", status, out)
	}
	resp, err := http.Get(b.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`parkedge_decisions_total{decision="open",gate="entry-1",reason="valid"} 2`,
		`parkedge_decision_seconds_count{gate="entry-1"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	if status, out := b.do(t, "GET", "/v1/nothing", ""); status != 404 || out["error"] == nil {
		t.Fatalf("unknown path: %d %v", status, out)
	}
}
