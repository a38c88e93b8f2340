package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
	qrcode "github.com/skip2/go-qrcode"
)

// The pages a driver's browser lands on when Checkout sends it back.
// Everything shown goes through html/template, which escapes it.
//
// The reservation's page is public (its id is in the URL), so the server
// renders only what anyone holding the link may see: status, plate, window.
// What needs the driver's access token — the access code as a QR image,
// cancel, extend — is done by the page's small script with the token it
// holds: taken from the URL's fragment (#access_token=…, which browsers
// never send to a server, so it reaches no access log or Referer), then
// kept in the browser's storage for this reservation, where the app that
// made the hold on this origin may also have put it. The script calls the
// JSON API with the token as a bearer token; nothing secret is ever in a
// URL the server sees.

// pageRefresh is how often a page still waiting for its payment reloads.
const pageRefresh = 5

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>{{.Title}} · parkgate</title></head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Text}}</p>
{{with .R}}<dl>
<dt>Reservation</dt><dd>{{.ID}}</dd>
<dt>Status</dt><dd>{{.Status}}</dd>
<dt>Plate</dt><dd>{{.Plate}}</dd>
<dt>From</dt><dd>{{.StartsAt.Format "2006-01-02 15:04 MST"}}</dd>
<dt>Until</dt><dd>{{.EndsAt.Format "2006-01-02 15:04 MST"}}</dd>
</dl>{{end}}
{{if .Link}}<p><a href="{{.Link}}">Check again</a></p>{{end}}
</body></html>
`))

type page struct {
	Title, Text string
	R           *cloud.Reservation
	Refresh     int
	Link        string
}

func (s *Server) writePage(w http.ResponseWriter, status int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", plainPageCSP)
	w.Header().Set("Cache-Control", "no-store") // the status changes; show the current one
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, p); err != nil {
		s.Log.Warn("render page", "err", err)
	}
}

// pages registers the people's pages on r: the driver's page, the
// reservation's page and the operator console.
func (s *Server) pages(r chi.Router) {
	r = r.With(s.limitClients) // a page reads the database as the API's GET does
	r.Get("/", s.driverPage)
	r.Get("/reservations/{id}", s.reservationPage)
	r.Get("/reservations/{id}/qr.png", s.reservationQR)
	r.Get("/paid", s.returnPage)
	r.Get("/cancelled", s.returnPage)
	r.Get("/console", s.consolePage)
}

// reservationPage shows a reservation's current status.
func (s *Server) reservationPage(w http.ResponseWriter, r *http.Request) {
	u, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		s.writePage(w, http.StatusNotFound, page{Title: "Reservation not found", Text: "There is no reservation at this address."})
		return
	}
	res, err := s.Booking.Reservation(r.Context(), u.String())
	if err != nil {
		status := StatusOf(err)
		p := page{Title: "Reservation not found", Text: "There is no reservation at this address."}
		if status != http.StatusNotFound {
			p = page{Title: "Please try again", Text: "We cannot look up your reservation right now.",
				Refresh: pageRefresh, Link: "/reservations/" + u.String()}
		}
		s.writePage(w, status, p)
		return
	}
	res.StartsAt, res.EndsAt = res.StartsAt.UTC(), res.EndsAt.UTC()
	p := page{R: &res, Link: "/reservations/" + res.ID}
	switch res.Status {
	case cloud.StatusPending:
		p.Title, p.Text, p.Refresh = "Your payment is being confirmed",
			"If you paid, this page updates once the payment is confirmed; it usually takes a few seconds. If you cancelled, the hold ends at "+
				res.HoldExpiresAt.UTC().Format(time.Kitchen+" MST")+".", pageRefresh
	case cloud.StatusConfirmed:
		p.Title, p.Text = "Your booking is confirmed", "The gate opens for your plate from the start of your booking."
	case cloud.StatusCheckedIn:
		p.Title, p.Text = "You are parked", "The gate lets you out when you leave."
	case cloud.StatusCompleted:
		p.Title, p.Text = "Your parking is over", "Thank you."
	case cloud.StatusExpired:
		p.Title, p.Text = "Your hold has expired", "It was not paid in time; the spot is free again. You were not charged."
	case cloud.StatusCancelled:
		p.Title, p.Text = "Your reservation is cancelled", "The spot is free again."
	case cloud.StatusRefunded:
		p.Title, p.Text = "Your payment is being refunded", "It arrived after the hold had expired, so it is returned in full."
	default:
		p.Title, p.Text = "Your reservation", "Its status is shown below."
	}
	s.writeReservationPage(w, p)
}

// returnPage answers the return URLs of earlier releases (/paid, /cancelled):
// to the reservation's page when the URL names it, else a short page.
func (s *Server) returnPage(w http.ResponseWriter, r *http.Request) {
	if u, err := uuid.Parse(r.URL.Query().Get("reservation_id")); err == nil {
		http.Redirect(w, r, "/reservations/"+u.String(), http.StatusSeeOther)
		return
	}
	if r.URL.Path == "/cancelled" {
		s.writePage(w, http.StatusOK, page{Title: "Payment cancelled",
			Text: "You were not charged. Your hold ends by itself; book again whenever you like."})
		return
	}
	s.writePage(w, http.StatusOK, page{Title: "Thank you",
		Text: "Your payment is being confirmed. Your booking is confirmed once the payment arrives; the app that booked shows it."})
}

// reservationTmpl is the reservation's page. Its script is the only one of
// the pages; it is small, needs no build, and the page reads fully
// without it (only the token's actions need it). A still PENDING page
// reloads by itself without script too (the noscript meta).
var reservationTmpl = template.Must(template.New("reservation").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
{{if .Refresh}}<noscript><meta http-equiv="refresh" content="{{.Refresh}}"></noscript>{{end}}
<title>{{.Title}} · parkgate</title>
<style>
body{font:1rem/1.5 system-ui,sans-serif;color:#111;background:#fff;margin:0 auto;padding:1rem;max-width:32rem}
h1{font-size:1.5rem;line-height:1.25}h2{font-size:1.15rem;margin-top:2rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
button,input{font:inherit;min-height:44px}
button{background:#0b57d0;color:#fff;border:0;border-radius:.4rem;padding:.5rem 1rem;cursor:pointer}
button.danger{background:#a50e0e}
:focus-visible{outline:3px solid #e8710a;outline-offset:2px}
label{display:block;font-weight:600;margin-bottom:.25rem}
input{border:1px solid #444;border-radius:.4rem;padding:.25rem .5rem;width:100%;box-sizing:border-box;margin-bottom:.5rem}
#qr{display:block;width:100%;max-width:18rem;height:auto;image-rendering:pixelated;border:1px solid #444}
.note{color:#333}
</style></head>
<body data-reservation="{{.R.ID}}" data-status="{{.R.Status}}" data-ends-at="{{.EndsAt}}">
<main>
<h1>{{.Title}}</h1>
<p>{{.Text}}</p>
<p id="msg" role="status" aria-live="polite"></p>
<dl>
<dt>Status</dt><dd>{{.R.Status}}</dd>
<dt>Plate</dt><dd>{{.R.Plate}}</dd>
<dt>From</dt><dd><time datetime="{{.StartsAt}}">{{.R.StartsAt.Format "2006-01-02 15:04 MST"}}</time></dd>
<dt>Until</dt><dd><time datetime="{{.EndsAt}}">{{.R.EndsAt.Format "2006-01-02 15:04 MST"}}</time></dd>
<dt>Reservation</dt><dd>{{.R.ID}}</dd>
</dl>
{{if .ShowsCode}}<section id="code" aria-labelledby="code-h" hidden>
<h2 id="code-h">Your access code</h2>
<p class="note">If the gate does not read your plate, hold this code up to its camera.</p>
<img id="qr" alt="QR code of your access code for reservation {{.R.ID}}, plate {{.R.Plate}}" width="288" height="288">
</section>{{end}}
{{if .CanExtend}}<section aria-labelledby="extend-h" data-needs-token hidden>
<h2 id="extend-h">Stay longer</h2>
<form id="extend">
<label for="ends-at">New end (your local time)</label>
<input id="ends-at" name="ends_at" type="datetime-local" required>
<button type="submit">Extend and pay</button>
</form></section>{{end}}
{{if .CanCancel}}<section aria-labelledby="cancel-h" data-needs-token hidden>
<h2 id="cancel-h">Cancel</h2>
<p class="note">Cancelling in time refunds what you paid; the lot's policy decides.</p>
<form id="cancel"><button type="submit" class="danger">Cancel this reservation</button></form>
</section>{{end}}
<p id="need-token" class="note" hidden>To see your access code, cancel or extend, open this page from the link or app you booked with.</p>
<p><a href="{{.Link}}">Check again</a></p>
</main>
<script>
(function () {
  "use strict";
  var b = document.body, id = b.dataset.reservation, status = b.dataset.status;
  var msg = document.getElementById("msg");
  function say(t) { msg.textContent = t; }
  document.querySelectorAll("time").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) t.textContent = d.toLocaleString();
  });
  if (status === "PENDING") {
    setInterval(function () {
      fetch("/v1/reservations/" + id).then(function (r) { return r.json(); })
        .then(function (r) { if (r.status && r.status !== status) location.reload(); })
        .catch(function () {});
    }, 3000);
  }
  var key = "parkgate-access-token-" + id, token = null;
  var m = /(?:^#|&)access_token=([^&]+)/.exec(location.hash);
  if (m) {
    token = decodeURIComponent(m[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
  try {
    if (token) localStorage.setItem(key, token); else token = localStorage.getItem(key);
  } catch (e) {}
  if (!token) {
    if (b.querySelector("[data-needs-token]") || document.getElementById("code")) document.getElementById("need-token").hidden = false;
    return;
  }
  function api(method, path, body, headers) {
    var h = headers || {};
    h.Authorization = "Bearer " + token;
    if (body) h["Content-Type"] = "application/json";
    return fetch(path, { method: method, headers: h, body: body ? JSON.stringify(body) : undefined });
  }
  function failed(r) {
    return r.json().then(function (e) { say((e.error && e.error.message) || "That did not work."); },
      function () { say("That did not work (" + r.status + ")."); });
  }
  document.querySelectorAll("[data-needs-token]").forEach(function (e) { e.hidden = false; });
  var code = document.getElementById("code");
  if (code) {
    api("GET", "/reservations/" + id + "/qr.png").then(function (r) {
      if (!r.ok) throw r.status;
      return r.blob();
    }).then(function (png) {
      document.getElementById("qr").src = URL.createObjectURL(png);
      code.hidden = false;
    }).catch(function () { say("Your access code cannot be shown right now."); });
  }
  var cancel = document.getElementById("cancel");
  if (cancel) cancel.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!confirm("Cancel this reservation?")) return;
    api("POST", "/v1/reservations/" + id + "/cancel").then(function (r) {
      if (r.ok) location.reload(); else failed(r);
    }, function () { say("No connection; nothing was changed."); });
  });
  var extend = document.getElementById("extend");
  if (extend) {
    var input = document.getElementById("ends-at"), ends = new Date(b.dataset.endsAt);
    var local = function (d) { return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16); };
    input.min = local(ends);
    input.value = local(new Date(ends.getTime() + 3600000));
    var idem = "page-" + id + "-" + Date.now() + "-" + Math.random().toString(36).slice(2);
    extend.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var to = new Date(input.value);
      if (isNaN(to)) { say("Please give the new end time."); return; }
      api("POST", "/v1/reservations/" + id + "/extensions", { ends_at: to.toISOString() }, { "Idempotency-Key": idem })
        .then(function (r) {
          if (!r.ok) return failed(r);
          return r.json().then(function (x) {
            if (x.payment && x.payment.url) location.assign(x.payment.url); else location.reload();
          });
        }, function () { say("No connection; try again."); });
    });
  }
})();
</script>
</body></html>
`))

// Content-Security-Policy of the pages. Nothing is loaded from elsewhere,
// no page may be framed (a framed page's cancel button could be clicked
// through a decoy: clickjacking), and the reservation page's one script
// and one style block run because their hashes are listed: an injected
// script, were one ever to get past html/template, would not. The QR image
// is a blob: URL the script makes from the PNG it fetched with the token.
var (
	plainPageCSP       = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	reservationPageCSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
		"connect-src 'self'; img-src 'self' blob:; " +
		"script-src " + inlineHash(reservationTmpl, "<script>", "</script>") + "; " +
		"style-src " + inlineHash(reservationTmpl, "<style>", "</style>")
)

// inlineHash is the CSP source of the text between open and close in t's
// source: the exact bytes a browser hashes, since html/template leaves
// text without actions as it is, but for JavaScript comments, which it
// drops: the inline scripts have none (TestPagesCSP checks the page
// served).
func inlineHash(t *template.Template, open, close string) string {
	src := t.Tree.Root.String()
	i := strings.Index(src, open)
	j := strings.Index(src, close)
	if i < 0 || j < i {
		panic("httpapi: no " + open + " in the page template")
	}
	sum := sha256.Sum256([]byte(src[i+len(open) : j]))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// reservationView is what the reservation's page shows; times as RFC 3339
// for the script, which shows them in the driver's own time zone.
type reservationView struct {
	page
	StartsAt, EndsAt                string
	ShowsCode, CanCancel, CanExtend bool
}

// writeReservationPage renders p, a page of a found reservation.
func (s *Server) writeReservationPage(w http.ResponseWriter, p page) {
	v := reservationView{page: p,
		StartsAt: p.R.StartsAt.Format(time.RFC3339), EndsAt: p.R.EndsAt.Format(time.RFC3339),
		ShowsCode: s.AccessCodes != nil && p.R.Status.OpensGate()}
	switch p.R.Status {
	case cloud.StatusPending:
		v.CanCancel = true
	case cloud.StatusConfirmed:
		v.CanCancel, v.CanExtend = true, true
	case cloud.StatusCheckedIn:
		v.CanExtend = true
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // the status changes; show the current one
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", reservationPageCSP)
	w.WriteHeader(http.StatusOK)
	if err := reservationTmpl.Execute(w, v); err != nil {
		s.Log.Warn("render page", "err", err)
	}
}

// qrSize is the QR image's width and height in pixels: sharp on a phone
// held up to a camera, and a few kilobytes.
const qrSize = 384

// reservationQR is GET /reservations/{id}/qr.png: the access code as a QR
// image, to whom may act for the reservation (its access token or the
// admin token, as a bearer token), while the reservation opens the gate.
// It never logs the code or the token.
func (s *Server) reservationQR(w http.ResponseWriter, r *http.Request) {
	res, ok := s.ownReservation(w, r)
	if !ok {
		return
	}
	if s.AccessCodes == nil || !res.Status.OpensGate() {
		writeError(w, r, s.Log, cloud.Errorf(cloud.ENotFound, "reservation %s has no access code while %s", res.ID, res.Status))
		return
	}
	code, err := s.AccessCodes(res)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	// Medium recovery: the code is long (a signature), and a phone screen
	// shown to a camera is clean, so capacity matters more than damage.
	png, err := qrcode.Encode(code, qrcode.Medium, qrSize)
	if err != nil {
		writeError(w, r, s.Log, fmt.Errorf("access code of %s as a QR image: %w", res.ID, err))
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(png)
}
