package httpapi_test

import (
	"testing"

	"github.com/parkgate/parkgate/edge/httpapi"
)

// TestBodyMediaType is DESIGN's input rule for every cloud and edge
// endpoint: a POST body labelled as anything but JSON is 415
// unsupported_media_type (the edge read a text/plain plate read as JSON and
// opened on it). An unlabelled body stays JSON, as on the cloud: plain HTTP
// clients and some cameras send none.
func TestBodyMediaType(t *testing.T) {
	b := setup(t, func(c *httpapi.Config) { c.CameraToken = "cam-secret" })
	cam := []string{"Authorization", "Bearer cam-secret"}
	op := []string{"Authorization", "Bearer op-secret"}
	for _, tt := range []struct {
		name, path, body, ct string
		auth                 []string
		status               int
	}{
		{"PlateReadTextPlain", "/v1/plate-reads", read, "text/plain", cam, 415},
		{"PlateReadForm", "/v1/plate-reads", read, "application/x-www-form-urlencoded", cam, 415},
		{"PlateReadMalformedType", "/v1/plate-reads", read, "application/json;;", cam, 415},
		{"AccessCodeTextPlain", "/v1/access-codes", `{"gate_id":"entry-1","code":"x"}`, "text/plain", cam, 415},
		{"OpenTextPlain", "/v1/gates/entry-1/open", `{"reason":"stuck"}`, "text/plain", op, 415},
		{"ResetTextPlain", "/v1/presence/AB123C/reset", `{"gate_id":"entry-1"}`, "text/plain", op, 415},
		{"PlateReadJSON", "/v1/plate-reads", read, "application/json", cam, 200},
		{"PlateReadJSONCharset", "/v1/plate-reads", read, "application/json; charset=utf-8", cam, 200},
		{"PlateReadPlusJSON", "/v1/plate-reads", read, "application/vnd.camera+json", cam, 200},
		{"PlateReadUnlabelled", "/v1/plate-reads", read, "", cam, 200},
		{"ResetNoBody", "/v1/presence/AB123C/reset", "", "text/plain", op, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hdr := append([]string{}, tt.auth...)
			if tt.ct != "" {
				hdr = append(hdr, "Content-Type", tt.ct)
			}
			status, out := b.do(t, "POST", tt.path, tt.body, hdr...)
			if status != tt.status {
				t.Fatalf("%d %v, want %d", status, out, tt.status)
			}
			if e, _ := out["error"].(map[string]any); tt.status == 415 && e["code"] != "unsupported_media_type" {
				t.Fatalf("%v", out)
			}
		})
	}
}

// TestBodyNotAnObject: a JSON body that is no object is named as such (the
// message was " has the wrong type", the decoder's empty field).
func TestBodyNotAnObject(t *testing.T) {
	b := setup(t)
	for _, body := range []string{`[]`, `"AB123C"`, `1`} {
		status, out := b.do(t, "POST", "/v1/plate-reads", body)
		e, _ := out["error"].(map[string]any)
		if status != 400 || e["code"] != "invalid_request" || e["message"] != "the body must be a JSON object" {
			t.Errorf("%s: %d %v; want 400 invalid_request, the body must be a JSON object", body, status, out)
		}
	}
}
