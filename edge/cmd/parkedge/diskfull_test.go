package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/broker"
)

// TestDiskFullKeepsDeciding: the agent's data directory on a small tmpfs,
// filled to the last byte. The gate keeps answering plate reads with
// decisions, and says the store is not writable — /healthz
// store_writable false (still 200: a probe must not restart it and lose
// what it holds), the parkedge_store_writable gauge 0, an error in the
// log — and recovers by itself once there is room. Needs root to mount;
// skipped elsewhere, and says so.
func TestDiskFullKeepsDeciding(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	b := broker.Start(t)
	logs := &bytes.Buffer{}
	m := &Main{Stderr: logs}
	err := m.ParseFlags([]string{"-lot-id", "lot-9", "-cloud-public-keys", testKeys(), "-mqtt-url", b.URL(),
		"-data-dir", filepath.Join(dir, "data"), "-http-addr", "127.0.0.1:0", "-cloud-url", "", "-edge-token", "", "-pulse", "1ms"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = m.Close()
		}
	}()
	base := "http://" + m.HTTPAddr()
	health := func() map[string]any {
		t.Helper()
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %d %v", resp.StatusCode, err)
		}
		return h
	}
	read := func(i int) {
		t.Helper()
		body := fmt.Sprintf(`{"gate_id":"entry-1","plate":"ZZ%04d","confidence":0.9}`, i%10000)
		resp, err := http.Post(base+"/v1/plate-reads", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"decision":"deny"`) {
			t.Fatalf("read %d with the disk full: %d %s", i, resp.StatusCode, b)
		}
	}
	if h := health(); h["store_writable"] != true {
		t.Fatalf("healthz before: %v", h)
	}

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for chunk := make([]byte, 16<<10); ; {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	f.Close()
	// The store may take a write again between two looks: the relay
	// deletes what the broker took, and bbolt reuses the freed pages. So
	// each claim is judged on one answer, and the reads go on until the
	// gauge is seen at 0 — it must be, while the disk stays full.
	i := 0
	for h := health(); ; h = health() {
		if h["store_writable"] == false {
			if h["status"] != "degraded" || h["store_held_events"].(float64) == 0 {
				t.Fatalf("healthz with the disk full: %v", h)
			}
			read(i) // still deciding
			if gauge(t, base, "parkedge_store_writable") == 0 {
				break
			}
		}
		if i++; i == 20000 {
			t.Fatal("20,000 rounds with the disk full and the store never refused a write, or the gauge never said so")
		}
		for range 50 {
			read(i)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for h := health(); h["store_writable"] != true || h["store_held_events"].(float64) != 0; h = health() {
		if time.Now().After(deadline) {
			t.Fatalf("room again, but after 15s: %v", h)
		}
		time.Sleep(20 * time.Millisecond)
	}
	closed = true
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"store not writable", "store writable again"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// gauge reads one unlabelled sample from /metrics.
func gauge(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}
