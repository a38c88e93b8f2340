package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud/httpapi"
)

// consoleBlock is the text of the page's one <tag> block.
func consoleBlock(t *testing.T, body, tag string) string {
	t.Helper()
	if n := strings.Count(body, "<"+tag); n != 1 {
		t.Fatalf("%d <%s> blocks in the console; the policy lists one", n, tag)
	}
	_, rest, ok := strings.Cut(body, "<"+tag+">")
	inline, _, ok2 := strings.Cut(rest, "</"+tag+">")
	if !ok || !ok2 {
		t.Fatalf("no <%s>…</%s> in the console", tag, tag)
	}
	return inline
}

// TestConsolePage: GET /console is the same public HTML for everyone, with
// no data and no secret in it; its CSP runs exactly the script and style
// served (by their hashes), forbids framing, and the page has a heading for
// each of the operator's tasks and a label for every field.
func TestConsolePage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, hdr := range map[string]map[string]string{
		"Anonymous": nil, "WithAdminToken": {"Authorization": "Bearer " + adminToken},
	} {
		t.Run(name, func(t *testing.T) {
			p := b.do(t, "GET", "/console", nil, hdr)
			if p.Status != 200 || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("GET /console: %d %s", p.Status, p.Header.Get("Content-Type"))
			}
			for h, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
				if got := p.Header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			body := string(p.Body)
			csp := p.Header.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'", "connect-src 'self'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP %q lacks %q", csp, d)
				}
			}
			for _, tag := range []string{"script", "style"} {
				sum := sha256.Sum256([]byte(consoleBlock(t, body, tag)))
				want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q, the hash of the <%s> served", csp, want, tag)
				}
			}
			for _, h := range []string{"Operator console", "Admin token", "Lot", "Edges", "Live gate events", "Reservations",
				"Permits", "Presence reset", "Alert endpoints"} {
				if !regexp.MustCompile(`<h[12][^>]*>` + regexp.QuoteMeta(h) + `</h[12]>`).MatchString(body) {
					t.Errorf("no heading %q", h)
				}
			}
			for _, a11y := range []string{`<html lang="en">`, `name="viewport"`, `role="status"`, `aria-live="polite"`,
				`type="password"`, "Forget token", `<th scope="col">`} {
				if !strings.Contains(body, a11y) {
					t.Errorf("page lacks %s", a11y)
				}
			}
			if strings.Contains(body, "<th>") {
				t.Error("a table header without scope")
			}
			fields := regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`).FindAllString(body, -1)
			if len(fields) < 12 {
				t.Errorf("only %d fields found: %q", len(fields), fields)
			}
			idOf := regexp.MustCompile(`\bid="([^"]+)"`)
			for _, f := range fields {
				m := idOf.FindStringSubmatch(f)
				if m == nil {
					t.Errorf("field without an id (so without a label): %s", f)
					continue
				}
				if !strings.Contains(body, `<label for="`+m[1]+`"`) && !strings.Contains(body, `for="`+m[1]+`">`) {
					t.Errorf("field %s has no <label for>", m[1])
				}
			}
			if !strings.Contains(body, `<form id="open-form"`) {
				t.Error("the edges section has no remote open")
			}
			for _, secret := range []string{adminToken, "whsec_", "Bearer " + adminToken} {
				if strings.Contains(body, secret) {
					t.Errorf("the page carries %q", secret)
				}
			}
			if regexp.MustCompile(`\binnerHTML\b|outerHTML|insertAdjacentHTML|document\.write|\beval\(`).MatchString(consoleBlock(t, body, "script")) {
				t.Error("the script writes markup; values from the API must go in as text")
			}
		})
	}
}

// TestConsoleCallsRoutedPaths: every API call in the console's script is
// an operation openapi.json documents and the router serves (so the page
// cannot call a route that does not exist), and every "/v1/" in the script
// is such a call, each at least once: lot, edges, gate events,
// reservations, refund, permits, presence reset, alert endpoints.
func TestConsoleCallsRoutedPaths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	script := consoleBlock(t, string(b.do(t, "GET", "/console", nil, nil).Body), "script")
	calls := regexp.MustCompile(`api\("(GET|POST|PATCH|PUT|DELETE)", "(/v1/[^"]*)"`).FindAllStringSubmatch(script, -1)
	if n := strings.Count(script, `"/v1/`); n != len(calls) || n == 0 {
		t.Fatalf(`%d "/v1/…" strings in the script but %d api("METHOD", "/v1/…") calls; every path must be called as api does`, n, len(calls))
	}
	doc := b.do(t, "GET", "/openapi.json", nil, nil)
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc.Body, &spec); err != nil {
		t.Fatal(err)
	}
	router := (&httpapi.Server{}).Handler().(chi.Routes)
	param := regexp.MustCompile(`\{\w+\}`)
	seen := map[string]bool{}
	for _, c := range calls {
		method, path := c[1], c[2]
		seen[method+" "+path] = true
		if _, ok := spec.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("the script calls %s %s, which openapi.json does not document", method, path)
		}
		if concrete := param.ReplaceAllString(path, "x"); !router.Match(chi.NewRouteContext(), method, concrete) {
			t.Errorf("the script calls %s %s, which the router does not serve", method, path)
		}
	}
	for _, want := range []string{
		"GET /v1/lots/{id}", "PATCH /v1/lots/{id}", "GET /v1/lots/{id}/edges", "GET /v1/lots/{id}/gate-events",
		"GET /v1/lots/{id}/reservations", "POST /v1/reservations/{id}/refund",
		"GET /v1/lots/{id}/permits", "POST /v1/lots/{id}/permits", "DELETE /v1/lots/{id}/permits/{permit_id}",
		"POST /v1/lots/{id}/presence/{plate}/reset", "POST /v1/lots/{id}/gates/{gate_id}/open",
		"GET /v1/webhook-endpoints", "POST /v1/webhook-endpoints", "DELETE /v1/webhook-endpoints/{id}",
	} {
		if !seen[want] {
			t.Errorf("the console never calls %s", want)
		}
	}
	if _, ok := spec.Paths["/console"]["get"]; !ok {
		t.Error("openapi.json does not document GET /console")
	}
	if !router.Match(chi.NewRouteContext(), http.MethodGet, "/console") {
		t.Error("the router does not serve GET /console")
	}
}
