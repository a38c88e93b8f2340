package alerts_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/alerts"
)

// TestDeliveryWireFormat is the contract's delivery, checked from the
// receiver's side without the package's own Verify: a POST whose body has
// exactly the keys id, type, created (RFC 3339) and data, and a
// Parkgate-Signature "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>".
func TestDeliveryWireFormat(t *testing.T) {
	t.Parallel()
	f := setup(t)
	type delivery struct {
		method, sig string
		body        []byte
	}
	got := make(chan delivery, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{r.Method, r.Header.Get("Parkgate-Signature"), b}
	}))
	t.Cleanup(srv.Close)
	e := f.endpoint(srv.URL)
	id := f.raise(cloud.AlertEdgeOnline)
	f.run(alerts.Options{})
	var d delivery
	select {
	case d = <-got:
	case <-time.After(waitFor):
		t.Fatal("no delivery")
	}
	if d.method != http.MethodPost {
		t.Errorf("method %s", d.method)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(d.body, &body); err != nil {
		t.Fatalf("body %s: %v", d.body, err)
	}
	if len(body) != 4 || body["id"] == nil || body["type"] == nil || body["created"] == nil || body["data"] == nil {
		t.Fatalf("body keys of %s, want exactly id, type, created, data", d.body)
	}
	var gotID, typ, created string
	_ = json.Unmarshal(body["id"], &gotID)
	_ = json.Unmarshal(body["type"], &typ)
	_ = json.Unmarshal(body["created"], &created)
	if gotID != id || typ != cloud.AlertEdgeOnline {
		t.Errorf("id %q type %q, want %q %q", gotID, typ, id, cloud.AlertEdgeOnline)
	}
	if at, err := time.Parse(time.RFC3339Nano, created); err != nil || at.Location() != time.UTC {
		t.Errorf("created %q: %v, want RFC 3339 UTC", created, err)
	}
	m := regexp.MustCompile(`^t=(\d+),v1=([0-9a-f]{64})$`).FindStringSubmatch(d.sig)
	if m == nil {
		t.Fatalf("Parkgate-Signature %q, want t=<unix seconds>,v1=<hex>", d.sig)
	}
	if ts, _ := strconv.ParseInt(m[1], 10, 64); time.Since(time.Unix(ts, 0)).Abs() > time.Hour {
		t.Errorf("t=%s is not the time of sending in unix seconds", m[1])
	}
	mac := hmac.New(sha256.New, []byte(e.Secret))
	mac.Write([]byte(m[1] + "."))
	mac.Write(d.body)
	if want := hex.EncodeToString(mac.Sum(nil)); m[2] != want {
		t.Errorf("v1=%s, want HMAC-SHA256(secret, t.body) %s", m[2], want)
	}
}
