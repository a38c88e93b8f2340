package bolt_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
)

// smallDisk mounts a tmpfs of 4 MB for the test, a disk that can really be
// filled. It needs root (CI runs as root); elsewhere the test is skipped
// and says why.
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the disk refuses with ENOSPC.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 16<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v, want ENOSPC", err)
			}
			return
		}
	}
}

// TestDiskFull: with its disk full the store keeps taking records — the
// gate keeps deciding, and a car that entered is known inside at once —,
// says so through Writable, and writes everything it held once there is
// room again, in order, so the outbox publishes every event.
func TestDiskFull(t *testing.T) {
	dir := smallDisk(t)
	path := filepath.Join(dir, "edge.db")
	s, err := bolt.Open(path, &bolt.Options{RetryEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if err := <-s.Record(edge.Record{Event: event("before", "entry-1")}); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	fill(t, filler)

	n := 1
	record := func(id string, pc edge.PresenceChange) {
		t.Helper()
		if err := <-s.Record(edge.Record{Event: event(id, "entry-1"), Presence: pc}); err != nil {
			t.Fatalf("record %s with the disk full: %v", id, err)
		}
		n++
	}
	// The file has free pages of its own; the disk refuses once they are
	// used up.
	for i := 0; s.Writable(); i++ {
		if i == 20000 {
			t.Fatal("20,000 records written with the disk full: it never refused")
		}
		record(fmt.Sprintf("full-%d", i), edge.PresenceChange{})
	}
	record("enter", edge.PresenceChange{Op: edge.PresenceEnter, Plate: "AB123C",
		Presence: edge.Presence{ReservationID: "r1", EnteredAt: t0}})
	if p := s.Presence()["AB123C"]; p.ReservationID != "r1" {
		t.Fatalf("a car that entered with the disk full is not known inside: %+v", p)
	}
	if s.Writable() || s.Held() == 0 {
		t.Fatalf("writable %v, %d held: the store does not say the disk refused", s.Writable(), s.Held())
	}
	held := s.Held()

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.Writable() || s.Held() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("room again, but after 10s writable %v with %d held", s.Writable(), s.Held())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.Depth() != n {
		t.Fatalf("outbox depth %d, want %d (%d were held)", s.Depth(), n, held)
	}
	s = reopen(t, s, path)
	entries, err := s.Pending(n + 10)
	if err != nil || len(entries) != n {
		t.Fatalf("after reopen: %d entries, %v; want %d", len(entries), err, n)
	}
	if entries[0].EventID != "before" || entries[n-1].EventID != "enter" {
		t.Fatalf("out of order: first %s, last %s", entries[0].EventID, entries[n-1].EventID)
	}
	if p := s.Presence()["AB123C"]; p.ReservationID != "r1" {
		t.Fatalf("presence lost across the full disk: %+v", p)
	}
}
