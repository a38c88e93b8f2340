package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge"
)

// FuzzParsePlateRead feeds the camera-facing decoder anything: it never
// panics, refuses only with invalid_request (never an internal error, which
// would be a 500), and what it accepts has every required field and
// survives a round trip through the JSON a camera would send.
func FuzzParsePlateRead(f *testing.F) {
	for _, s := range []string{
		`{"gate_id":"entry-1","plate":"AB-123 C","confidence":0.93,"captured_at":"2026-11-25T10:00:00Z"}`,
		`{"gate_id":"entry-1","plate":"MÜ-AB 12","confidence":1}`,
		`{"gate_id":"exit-1","plate":"АВ123","confidence":0,"captured_at":"2026-11-25T10:00:00.123456789+01:00"}`,
		`{"gate_id":"entry-1","plate":"AB123C","confidence":"high"}`,
		`{"gate_id":"entry-1","plate":"AB123C","confidence":0.9,"colour":"red"}`,
		`{"gate_id":"entry-1","plate":"AB123C","confidence":0.9}{}`,
		`{"gate_id":"entry-1","plate":"AB123C","confidence":1e400}`,
		`{"gate_id":null,"plate":"\u0000","confidence":-0}`,
		`[]`, `null`, ``, `{`, `"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		read, err := parsePlateRead(nil, io.NopCloser(bytes.NewReader(body)))
		if err != nil {
			var e *edge.Error
			if !errors.As(err, &e) || e.Code != edge.EInvalid || e.Message == "" {
				t.Fatalf("refused %q with %v: want an invalid_request with a message", body, err)
			}
			return
		}
		if read.GateID == "" || read.Plate == "" || math.IsNaN(read.Confidence) || math.IsInf(read.Confidence, 0) {
			t.Fatalf("accepted %q as %+v", body, read)
		}
		again := map[string]any{"gate_id": read.GateID, "plate": read.Plate, "confidence": read.Confidence}
		if !read.CapturedAt.IsZero() {
			again["captured_at"] = read.CapturedAt.Format(time.RFC3339Nano)
		}
		b, err := json.Marshal(again)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", read, err)
		}
		back, err := parsePlateRead(nil, io.NopCloser(bytes.NewReader(b)))
		if err != nil || back.GateID != read.GateID || back.Plate != read.Plate || back.Confidence != read.Confidence ||
			!back.CapturedAt.Equal(read.CapturedAt) {
			t.Fatalf("round trip of %q: %+v -> %s -> %+v, %v", body, read, b, back, err)
		}
	})
}
