package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The people's pages in a real browser: Debian's Chromium, headless, driven
// through chromedp. What the other page tests cannot see is seen here: the
// scripts run under the pages' own Content-Security-Policy (a hash that did
// not match would stop them, and the refusal the browser logs fails the
// test), against the real API, across the driver's whole way from the
// search to the access code through the Stripe stand-in's hosted page.
//
// deploy/services.sh installs chromium; a machine without it skips these.

// browser returns a chromedp context on a fresh headless Chromium, the
// script errors the pages raised so far (uncaught exceptions, CSP refusals),
// and fail, which ends the test at a step that went wrong, naming them.
func browser(t *testing.T) (ctx context.Context, problems func() []string, fail func(step string, err error)) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (deploy/services.sh installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in a container has no user namespaces
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })

	var mu sync.Mutex
	var seen []string
	listenErr := chromedp.Listen(ctx, func(ev any) {
		var p string
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			// The console asks before it closes a lot; the operator says yes.
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}()
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			p = fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, d.Text)
			if d.Exception != nil {
				p += " " + d.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			// CSP refusals come this way. A failed load is a network entry:
			// the pages have no favicon, and that 404 is no fault of theirs.
			if e := ev.Entry; e.Level == cdplog.EntryLevelError && e.Source != cdplog.EntrySourceNetwork {
				p = fmt.Sprintf("%s: %s", e.Source, e.Text)
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value))
				}
				p = "console.error: " + strings.Join(parts, " ")
			}
		}
		if p != "" {
			mu.Lock()
			seen = append(seen, p)
			mu.Unlock()
		}
	})
	if listenErr != nil {
		t.Fatalf("listen to the tab: %v", listenErr)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	problems = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
	fail = func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v (page problems: %v)", step, err, problems())
		}
	}
	return ctx, problems, fail
}

// step bounds one step of a test, so that a page whose script never ran
// fails the step in seconds, naming what the page logged, rather than the
// test at its end.
func step(t *testing.T, ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestDriverInBrowser: a driver finds a lot on GET /, holds a spot with the
// page's form, pays on the stand-in's hosted page, comes back to the
// reservation page, and sees it CONFIRMED with the access code's QR image —
// the token carried from the driver page to the reservation page in the
// browser's storage, never in a URL the server sees.
func TestDriverInBrowser(t *testing.T) {
	t.Parallel()
	ctx, problems, fail := browser(t)
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 2)
	start := time.Now().Add(2 * time.Hour).Truncate(time.Hour).UTC()
	end := start.Add(90 * time.Minute)
	search := b.srv.URL + "/?name=central&starts_at=" + url.QueryEscape(start.Format(time.RFC3339)) +
		"&ends_at=" + url.QueryEscape(end.Format(time.RFC3339))

	fail("search", chromedp.Do(step(t, ctx), chromedp.Navigate(search), chromedp.WaitVisible(chromedp.ID("results-h"))))
	found, err := chromedp.Run(step(t, ctx), chromedp.Text(chromedp.ID("results-h")))
	fail("results", err)
	if found != "1 lot found" {
		t.Errorf("results heading %q", found)
	}
	fail("hold", chromedp.Do(step(t, ctx),
		chromedp.SendKeys(chromedp.ID("plate-"+lot), "b ab 123"),
		chromedp.Click(chromedp.CSS(`form.hold[data-lot="`+lot+`"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[value="pay"]`)),
	))
	payURL, err := chromedp.Run(step(t, ctx), chromedp.Location())
	fail("location", err)
	sessions := b.fake.Sessions()
	if len(sessions) != 1 || !strings.HasSuffix(payURL, "/pay/"+sessions[0].ID) {
		t.Fatalf("the browser went to %s; want the hold's Checkout page (sessions %d)", payURL, len(sessions))
	}
	reservation := sessions[0].ClientReferenceID

	fail("pay", chromedp.Do(step(t, ctx),
		chromedp.Click(chromedp.CSS(`button[value="pay"]`)),
		chromedp.WaitReady(chromedp.ID("msg")),
	))
	stored, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[string](
		fmt.Sprintf(`localStorage.getItem("parkgate-access-token-%s") || ""`, reservation)))
	fail("storage", err)
	if stored == "" {
		t.Fatal("no access token in the browser's storage after the hold")
	}
	// The webhook confirms it, off the redirect's path: look again once it
	// has.
	b.waitStatus(t, reservation, "CONFIRMED")
	fail("reservation page", chromedp.Do(step(t, ctx),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("code")),
	))
	_, err = chromedp.Run(step(t, ctx), chromedp.Poll[chromedp.Void](`document.getElementById("qr").src.startsWith("blob:")`,
		chromedp.WithPollingTimeout(20*time.Second)))
	fail("the access code's image", err)
	here, err := chromedp.Run(step(t, ctx), chromedp.Location())
	fail("location", err)
	text, err := chromedp.Run(step(t, ctx), chromedp.Text(chromedp.CSS("main")))
	fail("text", err)
	if !strings.Contains(here, "/reservations/"+reservation) || strings.Contains(here, stored) {
		t.Errorf("back at %s; want the reservation page, without the token in its address", here)
	}
	if !strings.Contains(text, "CONFIRMED") {
		t.Errorf("the reservation page says %q", text)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("the pages' scripts: %v", p)
	}
}

// TestConsoleInBrowser: an operator opens GET /console, gives the admin
// token, opens a lot, sees its state and a reservation of it, and closes
// the lot from the page (saying yes to its question).
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	ctx, problems, fail := browser(t)
	b := setupPayments(t, 10*time.Minute)
	lot := b.createLot(t, 2)
	start := time.Now().Add(2 * time.Hour).Truncate(time.Hour).UTC()
	if r := b.do(t, "POST", "/v1/reservations", hold(lot, "CN 42 X", start, start.Add(time.Hour)), key("console-browser")); r.Status != 201 {
		t.Fatalf("hold: %d %s", r.Status, r.Body)
	}

	fail("open the lot", chromedp.Do(step(t, ctx),
		chromedp.Navigate(b.srv.URL+"/console"),
		chromedp.SendKeys(chromedp.ID("token"), adminToken+kb.Enter),
		chromedp.SendKeys(chromedp.ID("lot-id"), lot+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("lot-view")),
	))
	_, err := chromedp.Run(step(t, ctx), chromedp.Poll[chromedp.Void](
		`document.getElementById("lot-name").textContent !== "" && document.querySelectorAll("#res tr").length > 0`,
		chromedp.WithPollingTimeout(20*time.Second)))
	fail("the lot's data", err)
	name, err := chromedp.Run(step(t, ctx), chromedp.Text(chromedp.ID("lot-name")))
	fail("name", err)
	state, err := chromedp.Run(step(t, ctx), chromedp.Text(chromedp.ID("lot-state")))
	fail("state", err)
	rows, err := chromedp.Run(step(t, ctx), chromedp.Text(chromedp.ID("res")))
	fail("reservations", err)
	if name != "Central" || !strings.Contains(strings.ToLower(state), "open") {
		t.Errorf("lot shown as %q, state %q", name, state)
	}
	if !strings.Contains(rows, "CN42X") || !strings.Contains(rows, "PENDING") {
		t.Errorf("reservations table: %q", rows)
	}

	fail("close the lot", chromedp.Do(step(t, ctx), chromedp.Click(chromedp.ID("lot-toggle"))))
	_, err = chromedp.Run(step(t, ctx), chromedp.Poll[chromedp.Void](
		`document.getElementById("lot-toggle").textContent.toLowerCase().includes("reopen")`,
		chromedp.WithPollingTimeout(20*time.Second)))
	fail("the lot shown closed", err)
	if r := b.do(t, "GET", "/v1/lots/"+lot, nil, nil); r.json(t)["closed"] != true {
		t.Errorf("lot after the console closed it: %s", r.Body)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("the console's script: %v", p)
	}
}
