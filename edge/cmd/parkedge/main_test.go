package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/parkgate/parkgate/internal/testkit/broker"
	"github.com/parkgate/parkgate/protocol"
)

// TestMain lets TestHelpExitsZero run this package's main as parkedge
// itself, without building a binary.
func TestMain(m *testing.M) {
	if os.Getenv("PARKEDGE_RUN_MAIN") == "1" {
		os.Args = append([]string{"parkedge"}, strings.Fields(os.Getenv("PARKEDGE_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestHelpExitsZero is finding 17: -help must exit 0 and print the page,
// every flag with its environment variable, on stdout.
func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"-help", "--help", "-h"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PARKEDGE_RUN_MAIN=1", "PARKEDGE_ARGS="+arg, "PARKGATE_OPERATOR_TOKEN=op-secret")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("parkedge %s: %v\n%s", arg, err, stderr.String())
		}
		out := stdout.String()
		if !strings.Contains(out, "Usage: parkedge") || !strings.Contains(out, "-max-read-age") || strings.Contains(out, "op-secret") {
			t.Fatalf("parkedge %s printed:\n%s\nstderr:\n%s", arg, out, stderr.String())
		}
		// Every flag's entry (its line and the indented lines under it)
		// names its environment variable.
		flags := 0
		entries := strings.Split(out, "\n  -")
		for _, e := range entries[1:] {
			flags++
			if !strings.Contains(e, "(env ") {
				t.Errorf("flag -%s has no environment variable", strings.Fields(e)[0])
			}
		}
		if flags < 20 {
			t.Fatalf("parkedge %s listed %d flags:\n%s", arg, flags, out)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PARKEDGE_RUN_MAIN=1", "PARKEDGE_ARGS=-no-such-flag")
	if err := cmd.Run(); err == nil {
		t.Fatal("an unknown flag exited 0")
	}
}

func testKeys() string {
	k := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	return protocol.EncodePublicKey(k.Public().(ed25519.PublicKey))
}

func TestParseFlags(t *testing.T) {
	t.Run("EnvironmentFallbackAndFlagsWin", func(t *testing.T) {
		t.Setenv("PARKGATE_LOT_ID", "lot-7")
		t.Setenv("PARKGATE_CLOUD_PUBLIC_KEYS", testKeys())
		t.Setenv("PARKGATE_EDGE_TOKEN", "tok-secret")
		t.Setenv("PARKGATE_EARLY_GRACE", "5m")
		t.Setenv("MQTT_URL", "tcp://a:1883, tcp://b:1883")
		m := &Main{Stderr: &bytes.Buffer{}}
		if err := m.ParseFlags([]string{"-min-confidence", "0.6", "-gates", "in=entry"}); err != nil {
			t.Fatal(err)
		}
		c := m.Config
		if c.LotID != "lot-7" || c.EdgeToken != "tok-secret" || c.Policy.EarlyGrace != 5*time.Minute || c.Policy.MinConfidence != 0.6 ||
			len(c.Brokers) != 2 || c.Brokers[1] != "tcp://b:1883" || len(c.Gates) != 1 || c.Gates[0].ID != "in" || c.Hardware != HardwareSim {
			t.Fatalf("config %+v", c)
		}
	})
	t.Run("HelpNeverShowsSecrets", func(t *testing.T) {
		t.Setenv("PARKGATE_EDGE_TOKEN", "tok-secret")
		t.Setenv("PARKGATE_OPERATOR_TOKEN", "op-secret")
		out := &bytes.Buffer{}
		m := &Main{Stderr: out, Stdout: out}
		_ = m.ParseFlags([]string{"-help"})
		help := out.String()
		if strings.Contains(help, "secret\"") || strings.Contains(help, "tok-secret") || strings.Contains(help, "op-secret") {
			t.Fatalf("help shows a secret:\n%s", help)
		}
		for _, env := range []string{"PARKGATE_LOT_ID", "PARKGATE_GATES", "PARKGATE_DATA_DIR", "MQTT_URL", "PARKGATE_CLOUD_URL",
			"PARKGATE_EDGE_TOKEN", "PARKGATE_CLOUD_PUBLIC_KEYS", "PARKGATE_HARDWARE", "PARKGATE_HTTP_ADDR", "PARKGATE_PINS",
			"PARKGATE_EARLY_GRACE", "PARKGATE_EXIT_GRACE", "PARKGATE_MIN_CONFIDENCE", "PARKGATE_PULSE",
			"PARKGATE_MAX_READ_AGE", "PARKGATE_CAMERA_TOKEN", "PARKGATE_OPERATOR_TOKEN", "PARKGATE_CATCHUP_INTERVAL"} {
			if !strings.Contains(help, "env "+env+")") {
				t.Errorf("help does not name %s", env)
			}
		}
	})
	t.Run("CatchUpInterval", func(t *testing.T) {
		m := &Main{Stderr: &bytes.Buffer{}}
		if err := m.ParseFlags([]string{"-lot-id", "l", "-cloud-public-keys", testKeys()}); err != nil || m.Config.CatchUpEvery != 10*time.Second {
			t.Fatalf("default catch-up interval %v %v", m.Config.CatchUpEvery, err)
		}
		t.Setenv("PARKGATE_CATCHUP_INTERVAL", "3s")
		if err := m.ParseFlags([]string{"-lot-id", "l", "-cloud-public-keys", testKeys()}); err != nil || m.Config.CatchUpEvery != 3*time.Second {
			t.Fatalf("catch-up interval from env %v %v", m.Config.CatchUpEvery, err)
		}
		for _, bad := range []string{"0s", "-1s", "soon"} {
			if err := m.ParseFlags([]string{"-lot-id", "l", "-cloud-public-keys", testKeys(), "-catchup-interval", bad}); err == nil {
				t.Errorf("-catchup-interval %s accepted", bad)
			}
		}
	})
	t.Run("TokensAndReadAge", func(t *testing.T) {
		t.Setenv("PARKGATE_CAMERA_TOKEN", "cam-secret")
		t.Setenv("PARKGATE_OPERATOR_TOKEN", "op-secret")
		t.Setenv("PARKGATE_MAX_READ_AGE", "30s")
		m := &Main{Stderr: &bytes.Buffer{}}
		if err := m.ParseFlags([]string{"-lot-id", "l", "-cloud-public-keys", testKeys()}); err != nil {
			t.Fatal(err)
		}
		if c := m.Config; c.CameraToken != "cam-secret" || c.OperatorToken != "op-secret" || c.Policy.MaxReadAge != 30*time.Second {
			t.Fatalf("config %+v", c)
		}
		def := &Main{Stderr: &bytes.Buffer{}}
		t.Setenv("PARKGATE_MAX_READ_AGE", "")
		if err := def.ParseFlags([]string{"-lot-id", "l", "-cloud-public-keys", testKeys(), "-max-read-age", "10s"}); err != nil ||
			def.Config.Policy.MaxReadAge != 10*time.Second {
			t.Fatalf("max read age %v %v", def.Config.Policy.MaxReadAge, err)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		keys := testKeys()
		for name, args := range map[string][]string{
			"NoLot":           {"-cloud-public-keys", keys},
			"NoKeys":          {"-lot-id", "l"},
			"BadGates":        {"-lot-id", "l", "-cloud-public-keys", keys, "-gates", "x=up"},
			"BadHardware":     {"-lot-id", "l", "-cloud-public-keys", keys, "-hardware", "arduino"},
			"PeriphNoBarrier": {"-lot-id", "l", "-cloud-public-keys", keys, "-hardware", "periph", "-pins", "entry-1.barrier=GPIO17"},
			"PinsUnknownGate": {"-lot-id", "l", "-cloud-public-keys", keys, "-pins", "side.barrier=GPIO17"},
			"BadConfidence":   {"-lot-id", "l", "-cloud-public-keys", keys, "-min-confidence", "2"},
			"BadPulse":        {"-lot-id", "l", "-cloud-public-keys", keys, "-pulse", "0s"},
			"BadReadAge":      {"-lot-id", "l", "-cloud-public-keys", keys, "-max-read-age", "0s"},
		} {
			t.Run(name, func(t *testing.T) {
				m := &Main{Stderr: &bytes.Buffer{}}
				if err := m.ParseFlags(args); err == nil {
					t.Fatal("accepted")
				}
			})
		}
	})
}

// TestRun starts the whole agent with fake pins against a real broker and
// drives it as a camera, an operator and the simulator would.
func TestRun(t *testing.T) {
	b := broker.Start(t)
	logs := &bytes.Buffer{}
	m := &Main{Stderr: logs}
	err := m.ParseFlags([]string{"-lot-id", "lot-9", "-cloud-public-keys", testKeys(), "-mqtt-url", b.URL(),
		"-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-cloud-url", "", "-edge-token", "", "-pulse", "50ms"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := "http://" + m.HTTPAddr()

	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var gates struct {
			Gates []struct {
				State string `json:"state"`
			} `json:"gates"`
		}
		get("/v1/gates", &gates)
		if len(gates.Gates) == 2 && gates.Gates[0].State == "online" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent never online: %+v", gates)
		}
		time.Sleep(20 * time.Millisecond)
	}

	resp, err := http.Post(base+"/v1/plate-reads", "application/json", strings.NewReader(`{"gate_id":"entry-1","plate":"ZZ1234","confidence":0.9}`))
	if err != nil {
		t.Fatal(err)
	}
	var dec map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&dec)
	resp.Body.Close()
	if resp.StatusCode != 200 || dec["decision"] != "deny" || dec["reason"] != protocol.ReasonNoReservation {
		t.Fatalf("plate read: %d %v", resp.StatusCode, dec)
	}

	// The simulator presses the override button through the sim endpoint;
	// the barrier relay goes high.
	barrier := m.FakePins["exit-1.barrier"]
	edges, stop := barrier.Watch(4)
	defer stop()
	resp, err = http.Post(base+"/v1/sim/pins/exit-1.override", "application/json", strings.NewReader(`{"level":"high"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sim pin: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case e := <-edges:
		if e.Level != gpio.High {
			t.Fatalf("edge %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("override did not open the barrier")
	}
	var pins struct {
		Pins []struct {
			Name  string `json:"name"`
			Edges []struct {
				Level string    `json:"level"`
				At    time.Time `json:"at"`
			} `json:"edges"`
		} `json:"pins"`
	}
	get("/v1/sim/pins", &pins)
	if len(pins.Pins) != 8 {
		t.Fatalf("sim pins %+v", pins)
	}
	for _, p := range pins.Pins {
		if p.Name == "exit-1.barrier" && (len(p.Edges) == 0 || p.Edges[0].Level != "high" || p.Edges[0].At.IsZero()) {
			t.Fatalf("barrier edges over HTTP: %+v", p)
		}
	}
	// Finding 9: the edge took 100 KB of headers. Finding 10: with no
	// operator token configured, operator calls are off, not open.
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set("X-Pad", strings.Repeat("a", 100<<10))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KB of headers: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"/v1/gates/entry-1/open", "/v1/presence/ZZ1234/reset"} {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(`{"reason":"test"}`))
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s without an operator token configured: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	if strings.Contains(logs.String(), "tok-") {
		t.Fatal("secret in log")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
