package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud/alerts"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/internal/testkit/proc"
)

// TestAlertSurvivesRestart is issue 15's proof: an alert whose receiver
// failed while one parkcloud ran is delivered by the next one, started
// after the first was killed (SIGKILL: no shutdown of any kind), with the
// same event id, signed with the endpoint's secret.
func TestAlertSurvivesRestart(t *testing.T) {
	t.Parallel()
	schema := pgtest.New(t, 4)
	const admin = "alerts-admin"

	var mu sync.Mutex
	failing := true
	type attempt struct {
		id     string
		status int
		sigErr error
	}
	var attempts []attempt
	var secret string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct{ ID, Type string }
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		a := attempt{id: ev.ID, status: http.StatusOK, sigErr: alerts.Verify(body, r.Header.Get(alerts.SignatureHeader), secret, 0, time.Now())}
		if failing {
			a.status = http.StatusInternalServerError
		}
		attempts = append(attempts, a)
		w.WriteHeader(a.status)
	}))
	t.Cleanup(rcv.Close)
	snapshot := func() []attempt {
		mu.Lock()
		defer mu.Unlock()
		return append([]attempt(nil), attempts...)
	}

	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	start := func() *exec.Cmd {
		return serveParkcloud(t, schema.URL, addr, "PARKGATE_ADMIN_TOKEN="+admin, "PARKGATE_ALERT_POLL=100ms")
	}
	call := func(method, path string, body any, hdr map[string]string, want int) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+admin)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
		}
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return out
	}

	first := start()
	ep := call("POST", "/v1/webhook-endpoints", map[string]any{"url": rcv.URL + "/hook", "events": []string{"reservation.cancelled"}}, nil, 201)
	mu.Lock()
	secret, _ = ep["secret"].(string)
	mu.Unlock()
	lot := call("POST", "/v1/lots", map[string]any{"name": "Alerts", "latitude": 48.1, "longitude": 11.5, "time_zone": "Europe/Berlin",
		"spots": 1, "hourly_rate": map[string]any{"amount": 0, "currency": "EUR"}}, nil, 201)["id"].(string)
	from := time.Now().Add(2 * time.Hour).Truncate(time.Minute).UTC()
	res := call("POST", "/v1/reservations", map[string]any{"lot_id": lot, "plate": "AB123", "starts_at": from.Format(time.RFC3339),
		"ends_at": from.Add(time.Hour).Format(time.RFC3339)}, map[string]string{"Idempotency-Key": "alerts-1"}, 201)["id"].(string)
	call("POST", "/v1/reservations/"+res+"/cancel", nil, nil, 200)

	waitUntil(t, "a failed attempt", func() bool { return len(snapshot()) >= 1 })
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	mu.Lock()
	failing = false
	mu.Unlock()

	start()
	waitUntil(t, "the delivery after the restart", func() bool {
		a := snapshot()
		return len(a) > 0 && a[len(a)-1].status == http.StatusOK
	})
	time.Sleep(500 * time.Millisecond) // several polls: no second success may follow
	got := snapshot()
	ok := 0
	for _, a := range got {
		if a.id != got[0].id || a.sigErr != nil {
			t.Errorf("attempt %+v: want event %s, signed", a, got[0].id)
		}
		if a.status == http.StatusOK {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("%d successful deliveries, want 1: %+v", ok, got)
	}
}

// parkcloudCmd is this test binary run as `parkcloud ARGS` on the database
// at databaseURL, with no Redis, broker or Stripe unless env says so;
// its output goes to the buffer.
func parkcloudCmd(args, databaseURL string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestParkcloudAsProcess$")
	cmd.Env = append(append(os.Environ(), "PARKCLOUD_RUN_MAIN=1", "PARKCLOUD_ARGS="+args,
		"DATABASE_URL="+databaseURL, "REDIS_URL=", "MQTT_URL=", "STRIPE_SECRET_KEY=", "STRIPE_WEBHOOK_SECRET="), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// serveParkcloud starts `parkcloud serve` at addr and returns once it
// answers /healthz; it is killed when the test ends, and its output
// logged if the test failed.
func serveParkcloud(t *testing.T, databaseURL, addr string, env ...string) *exec.Cmd {
	t.Helper()
	cmd, out := parkcloudCmd("serve", databaseURL, append([]string{"PARKGATE_HTTP_ADDR=" + addr}, env...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("parkcloud output:\n%s", out.String())
		}
	})
	waitUntil(t, "parkcloud answers", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return cmd
}

// waitUntil polls cond generously: the default first retry is 10s (±20%).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
