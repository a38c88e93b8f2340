package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/parkgate/parkgate/cloud/httpapi"
	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
	"github.com/parkgate/parkgate/cloud/relay"
)

// loadDoc fetches /openapi.json from a server and loads it with
// kin-openapi, which reads and validates OpenAPI 3.1 (JSON Schema 2020-12
// included) since v0.152.
func loadDoc(t *testing.T, h http.Handler) *openapi3.T {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	return doc
}

// TestOpenAPIValid: the document is OpenAPI 3.1 and valid as such, and every
// error answer it describes is the contract's envelope.
func TestOpenAPIValid(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t, (&httpapi.Server{}).Handler())
	if !doc.IsOpenAPI31OrLater() || !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document: %v", err)
	}
	for _, scheme := range []string{"adminBearer", "edgeBearer"} {
		if doc.Components.SecuritySchemes[scheme] == nil {
			t.Errorf("security scheme %s missing", scheme)
		}
	}
	envelope := doc.Components.Schemas["Error"].Value
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code, resp := range op.Responses.Map() {
				if code < "400" || path == "/readyz" { // readyz's 503 is its own report
					continue
				}
				if mt := resp.Value.Content.Get("application/json"); mt != nil && mt.Schema.Value != envelope {
					t.Errorf("%s %s %s: a JSON error answer whose schema is not Error", method, path, code)
				}
			}
		}
	}
	// Every code of the contract (cloud/error.go) is in the envelope's list.
	src, err := os.ReadFile("../error.go")
	if err != nil {
		t.Fatal(err)
	}
	codes := envelope.Properties["error"].Value.Properties["code"].Value.Enum
	consts := regexp.MustCompile(`(?m)^\s+E\w+\s*=\s*"(\w+)"`).FindAllSubmatch(src, -1)
	if len(consts) < 10 {
		t.Fatalf("found only %d error codes in cloud/error.go", len(consts))
	}
	for _, m := range consts {
		if !slices.Contains(codes, any(string(m[1]))) {
			t.Errorf("error code %s is not in the Error schema's enum", m[1])
		}
	}
	hold := doc.Paths.Find("/v1/reservations").Post
	if p := hold.Parameters.GetByInAndName("header", "Idempotency-Key"); p == nil || !p.Required {
		t.Errorf("POST /v1/reservations does not require the Idempotency-Key header")
	}
}

// TestOpenAPIMatchesRouter: every route the router serves is in the
// document, and every operation the document names is served.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	h := (&httpapi.Server{}).Handler()
	doc := loadDoc(t, h)
	var served, documented []string
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served = append(served, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("served but not documented: %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("documented but not served: %s", r)
		}
	}
	if len(served) < 15 {
		t.Errorf("the walk found only %d routes: %v", len(served), served)
	}
}

// validator checks real answers against the document: the status must be
// one it lists for the operation, and the body and headers must match that
// answer's schema. The document's object schemas are closed for the check
// (no properties beyond those named) so a field added to an answer but not
// to the document fails here; the published document leaves them open, so
// clients take a new field as the addition it is.
type validator struct {
	doc    *openapi3.T
	router routers.Router
	url    string
	client *http.Client
}

func newValidator(t *testing.T, srvURL string, h http.Handler) *validator {
	t.Helper()
	doc := loadDoc(t, h)
	closeObjects(doc)
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &validator{doc: doc, router: router, url: srvURL, client: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// closeObjects sets additionalProperties false on every response-shaped
// object schema: one with properties and required ones (a request-side
// overlay such as LotCreate's hourly_rate has no required list).
func closeObjects(doc *openapi3.T) {
	no := false
	seen := map[*openapi3.Schema]bool{}
	var walk func(s *openapi3.SchemaRef)
	walk = func(s *openapi3.SchemaRef) {
		if s == nil || s.Value == nil || seen[s.Value] {
			return
		}
		v := s.Value
		seen[v] = true
		if len(v.Properties) > 0 && len(v.Required) > 0 && v.AdditionalProperties.Has == nil && v.AdditionalProperties.Schema == nil {
			v.AdditionalProperties.Has = &no
		}
		for _, p := range v.Properties {
			walk(p)
		}
		walk(v.Items)
		for _, l := range []openapi3.SchemaRefs{v.OneOf, v.AnyOf, v.AllOf} {
			for _, s := range l {
				walk(s)
			}
		}
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
}

// do sends a request and checks its answer against the document.
func (v *validator) do(t *testing.T, method, path string, body any, hdr map[string]string) reply {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	req, _ := http.NewRequest(method, v.url+path, bytes.NewReader(raw))
	for k, val := range hdr {
		req.Header.Set(k, val)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	route, params, err := v.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: not in the document: %v", method, path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		// HTML pages and Prometheus' text: the document says only "a
		// string" of them; their status and headers are still checked.
		in.Options.ExcludeResponseBody = true
	}
	in.SetBodyBytes(out)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s → %d %s\ndoes not match the document: %v", method, path, resp.StatusCode, out, err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// expect is do, failing unless the status is want.
func (v *validator) expect(t *testing.T, want int, method, path string, body any, hdr map[string]string) reply {
	t.Helper()
	r := v.do(t, method, path, body, hdr)
	if r.Status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, r.Status, r.Body, want)
	}
	return r
}

// TestOpenAPIResponses: real answers of a test server, success and error,
// match the document's schemas.
func TestOpenAPIResponses(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t, 8)
	_, signKey, _ := ed25519.GenerateKey(rand.Reader)
	svc := booking.New(s.DB, nil, nil, nil, 10*time.Minute)
	api := &httpapi.Server{Booking: svc, DB: s.DB, EdgeTokens: s.DB, EdgeKeys: s.DB,
		Feed: relay.NewFeed(s.DB, signKey), AdminToken: adminToken}
	h := api.Handler()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	v := newValidator(t, srv.URL, h)
	admin := map[string]string{"Authorization": "Bearer " + adminToken}

	lotBody := map[string]any{"name": "Central", "latitude": 48.137, "longitude": 11.575, "time_zone": "Europe/Berlin",
		"spots": []string{"A1"}, "hourly_rate": map[string]any{"amount": 250, "currency": "eur"}}
	lot := v.expect(t, 201, "POST", "/v1/lots", lotBody, admin).json(t)["id"].(string)
	free := v.expect(t, 201, "POST", "/v1/lots", map[string]any{"name": "Free", "latitude": 48.14, "longitude": 11.58,
		"spots": 3, "hourly_rate": map[string]any{"amount": 0, "currency": "EUR"}}, admin).json(t)["id"].(string)
	v.expect(t, 400, "POST", "/v1/lots", map[string]any{"latitude": 1}, admin)
	v.expect(t, 401, "POST", "/v1/lots", lotBody, nil)
	v.expect(t, 415, "POST", "/v1/lots", "name=x", map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/x-www-form-urlencoded"})
	v.expect(t, 413, "POST", "/v1/lots", `{"name":"`+strings.Repeat("x", 300<<10)+`"}`, admin)

	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	end := start.Add(time.Hour)
	win := "starts_at=" + start.Format(time.RFC3339) + "&ends_at=" + end.Format(time.RFC3339)
	v.expect(t, 200, "GET", "/v1/lots?lat=48.137&lng=11.575&"+win, nil, nil)
	v.expect(t, 400, "GET", "/v1/lots?lng=11.575", nil, nil)
	v.expect(t, 200, "GET", "/v1/lots/"+lot+"/availability?"+win, nil, nil)
	v.expect(t, 404, "GET", "/v1/lots/not-a-lot/availability", nil, nil)

	made := v.expect(t, 201, "POST", "/v1/reservations", hold(lot, "AB123", start, end), key("oa-1"))
	id := made.json(t)["id"].(string)
	if loc := made.Header.Get("Location"); loc != "/v1/reservations/"+id {
		t.Errorf("201 of %s with Location %q", id, loc)
	}
	r := v.expect(t, 201, "POST", "/v1/reservations", hold(lot, "AB123", start, end), key("oa-1"))
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay without Idempotent-Replayed")
	}
	if loc := r.Header.Get("Location"); loc != "/v1/reservations/"+id {
		t.Errorf("replay of %s with Location %q", id, loc)
	}
	freeHold := v.expect(t, 201, "POST", "/v1/reservations", hold(free, "CD456", start, end), key("oa-free"))
	if loc, fid := freeHold.Header.Get("Location"), freeHold.json(t)["id"]; loc != "/v1/reservations/"+fid.(string) {
		t.Errorf("free hold %v with Location %q", fid, loc)
	}
	v.expect(t, 409, "POST", "/v1/reservations", hold(lot, "EF789", start, end), key("oa-2"))
	v.expect(t, 422, "POST", "/v1/reservations", hold(lot, "GH000", start, end), key("oa-1"))
	v.expect(t, 400, "POST", "/v1/reservations", hold(lot, "AB123", start, end), nil)
	v.expect(t, 400, "POST", "/v1/reservations", map[string]any{"lot_id": lot, "plate": "!"}, key("oa-3"))
	v.expect(t, 404, "POST", "/v1/reservations", hold("6f1c3e44-0000-4000-8000-000000000000", "AB123", start, end), key("oa-4"))
	v.expect(t, 200, "GET", "/v1/reservations/"+id, nil, nil)
	v.expect(t, 404, "GET", "/v1/reservations/nope", nil, nil)

	// The edge side on the free lot: its hold, CONFIRMED at once, is a
	// change for the edges (a paid lot's PENDING hold is silent).
	tok := v.expect(t, 201, "POST", "/v1/lots/"+free+"/edge-tokens", nil, admin).json(t)["token"].(string)
	v.expect(t, 404, "POST", "/v1/lots/6f1c3e44-0000-4000-8000-000000000000/edge-tokens", nil, admin)
	edge := map[string]string{"Authorization": "Bearer " + tok}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	v.expect(t, 201, "POST", "/v1/edge/lots/"+free+"/keys", map[string]any{"public_key": base64.StdEncoding.EncodeToString(pub)}, edge)
	v.expect(t, 400, "POST", "/v1/edge/lots/"+free+"/keys", map[string]any{"public_key": "short"}, edge)
	v.expect(t, 401, "POST", "/v1/edge/lots/"+free+"/keys", map[string]any{"public_key": "x"}, nil)
	if page := v.expect(t, 200, "GET", "/v1/edge/lots/"+free+"/changes?after=0", nil, edge); len(page.json(t)["changes"].([]any)) == 0 {
		t.Errorf("changes: none after a free hold")
	}
	v.expect(t, 400, "GET", "/v1/edge/lots/"+free+"/changes?after=-1", nil, edge)
	v.expect(t, 503, "POST", "/v1/payments/webhook", "{}", nil) // no webhooks configured

	v.expect(t, 200, "GET", "/reservations/"+id, nil, nil)
	v.expect(t, 404, "GET", "/reservations/nope", nil, nil)
	v.expect(t, 303, "GET", "/paid?reservation_id="+id, nil, nil)
	v.expect(t, 200, "GET", "/cancelled", nil, nil)
	v.expect(t, 200, "GET", "/healthz", nil, nil)
	v.expect(t, 200, "GET", "/readyz", nil, nil)
	v.expect(t, 200, "GET", "/metrics", nil, nil)
	v.expect(t, 200, "GET", "/openapi.json", nil, nil)
}

// TestOpenAPIPaidHold: a hold with a Checkout Session, and the webhook's
// refusal of a bad signature, match the document.
func TestOpenAPIPaidHold(t *testing.T) {
	t.Parallel()
	b := setupPayments(t, 10*time.Minute)
	v := newValidator(t, b.srv.URL, (&httpapi.Server{}).Handler())
	lot := b.createLot(t, []string{"A1"})
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	r := v.expect(t, 201, "POST", "/v1/reservations", hold(lot, "AB123", start, start.Add(time.Hour)), key("paid-1"))
	if p, _ := r.json(t)["payment"].(map[string]any); p["url"] == nil {
		t.Errorf("paid hold without a payment url: %s", r.Body)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/reservations/"+r.json(t)["id"].(string) {
		t.Errorf("paid hold with Location %q: %s", loc, r.Body)
	}
	v.expect(t, 400, "POST", "/v1/payments/webhook", `{"id":"evt_1"}`, map[string]string{"Stripe-Signature": "t=1,v1=00"})
}
