package httpapi

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parkgate/parkgate/cloud"
	"golang.org/x/text/currency"
)

// The hold's Idempotency-Key, in the page's script: a refusal is stored
// under its key, so a new attempt (another plate, another time) takes a
// new one; an outage, a limit or a request still in flight is retried with
// the same key, so it can never book twice. (No comments inside the
// script: html/template drops them, and the CSP hash is of the template.)

// The driver's page, GET /: find a lot by name or near the browser's
// location, see its price and free spots for a window, hold a spot and go
// on to pay at Checkout. The search is the server's, rendered into the page
// (it works without script); the hold is the page's small script, since it
// needs an Idempotency-Key and keeps the driver's access token: in the
// browser's storage under the reservation's key, where the reservation's
// page (pages.go) finds it when Checkout sends the driver back, and in the
// URL fragment (never sent to a server) when there is nothing to pay.

// maxNameQuery bounds the name a driver searches for.
const maxNameQuery = 100

// driverResult is one lot found, as the page shows it.
type driverResult struct {
	ID, Name         string
	DistanceM        float64
	HasDistance      bool
	Available, Total int
	Price            string
}

type driverView struct {
	Name, Lat, Lng, Radius string
	From, Until            string // the window as datetime-local values, UTC
	StartsAt, EndsAt       string // RFC 3339
	Searched               bool
	Error                  string
	Results                []driverResult
}

// driverPage is GET /.
func (s *Server) driverPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := driverView{Name: strings.TrimSpace(q.Get("name")), Lat: q.Get("lat"), Lng: q.Get("lng"), Radius: q.Get("radius_m")}
	status := http.StatusOK
	start, end, err := s.driverWindow(r)
	if err == nil {
		v.StartsAt, v.EndsAt = start.Format(time.RFC3339), end.Format(time.RFC3339)
		v.From, v.Until = start.Format("2006-01-02T15:04"), end.Format("2006-01-02T15:04")
		v.Results, v.Searched, err = s.driverSearch(r, v, start, end)
	}
	if err != nil {
		status = StatusOf(err)
		v.Error = cloud.ErrorMessage(err)
		if f := cloud.ErrorField(err); f != "" {
			v.Error = f + ": " + v.Error
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // availability changes
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", driverPageCSP)
	w.WriteHeader(status)
	if err := driverTmpl.Execute(w, v); err != nil {
		s.Log.Warn("render page", "err", err)
	}
}

// driverWindow is the window asked: starts_at and ends_at in RFC 3339 (the
// page's script sends them so), else the form's from and until read as UTC
// (a browser without script), else the next two hours.
func (s *Server) driverWindow(r *http.Request) (time.Time, time.Time, error) {
	q := r.URL.Query()
	if q.Get("starts_at") != "" || q.Get("ends_at") != "" {
		return s.window(r)
	}
	from, until := q.Get("from"), q.Get("until")
	if from == "" && until == "" {
		return s.window(r)
	}
	start, err := time.Parse("2006-01-02T15:04", from)
	if err != nil {
		return time.Time{}, time.Time{}, cloud.FieldError("from", "from must be a date and time")
	}
	end, err := time.Parse("2006-01-02T15:04", until)
	if err != nil {
		return time.Time{}, time.Time{}, cloud.FieldError("until", "until must be a date and time")
	}
	return start.UTC(), end.UTC(), nil
}

// driverSearch finds the lots the form asks for: by name when a name is
// given, else near lat/lng; nothing when neither is.
func (s *Server) driverSearch(r *http.Request, v driverView, start, end time.Time) ([]driverResult, bool, error) {
	var matches []cloud.LotMatch
	located := false
	switch {
	case v.Name != "":
		if utf8.RuneCountInString(v.Name) > maxNameQuery {
			return nil, false, cloud.FieldError("name", "name must be at most %d characters", maxNameQuery)
		}
		var err error
		if matches, err = s.DB.LotsNamed(r.Context(), v.Name, start, end, searchLimit); err != nil {
			return nil, false, err
		}
	case v.Lat != "" || v.Lng != "":
		lat, err := queryFloat(r, "lat", math.NaN(), -90, 90)
		if err != nil {
			return nil, false, err
		}
		lng, err := queryFloat(r, "lng", math.NaN(), -180, 180)
		if err != nil {
			return nil, false, err
		}
		radius, err := queryFloat(r, "radius_m", defaultRadiusM, 1, maxRadiusM)
		if err != nil {
			return nil, false, err
		}
		if matches, err = s.search(r.Context(), lat, lng, radius, start, end); err != nil {
			return nil, false, err
		}
		located = true
	default:
		return nil, false, nil
	}
	out := make([]driverResult, 0, len(matches))
	for _, m := range matches {
		price, err := cloud.Price(m.Lot.HourlyRate, start, end)
		if err != nil {
			return nil, false, err
		}
		out = append(out, driverResult{
			ID: m.Lot.ID, Name: m.Lot.Name, DistanceM: math.Round(m.DistanceM), HasDistance: located,
			Available: max(m.Available, 0), Total: m.Lot.TotalSpots, Price: money(price),
		})
	}
	return out, true, nil
}

// money shows an amount in its currency's major unit, with as many
// decimals as the currency has (ISO 4217: two for EUR, none for JPY, three
// for BHD), as amounts are in its minor unit.
func money(m cloud.Money) string {
	scale := 2
	if u, err := currency.ParseISO(m.Currency); err == nil {
		scale, _ = currency.Standard.Rounding(u)
	}
	if scale == 0 {
		return fmt.Sprintf("%d %s", m.Amount, m.Currency)
	}
	pow := int64(math.Pow10(scale))
	return fmt.Sprintf("%d.%0*d %s", m.Amount/pow, scale, m.Amount%pow, m.Currency)
}

var driverPageCSP = "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; " +
	"connect-src 'self'; " +
	"script-src " + inlineHash(driverTmpl, "<script>", "</script>") + "; " +
	"style-src " + inlineHash(driverTmpl, "<style>", "</style>")

var driverTmpl = template.Must(template.New("driver").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Find parking · parkgate</title>
<style>
body{font:1rem/1.5 system-ui,sans-serif;color:#111;background:#fff;margin:0 auto;padding:1rem;max-width:32rem}
h1{font-size:1.5rem;line-height:1.25}h2{font-size:1.15rem;margin:0}
button,input{font:inherit;min-height:44px}
button{background:#0b57d0;color:#fff;border:0;border-radius:.4rem;padding:.5rem 1rem;cursor:pointer}
button.plain{background:#fff;color:#0b57d0;border:1px solid #0b57d0}
:focus-visible{outline:3px solid #e8710a;outline-offset:2px}
label{display:block;font-weight:600;margin-bottom:.25rem}
input{border:1px solid #444;border-radius:.4rem;padding:.25rem .5rem;width:100%;box-sizing:border-box;margin-bottom:.5rem}
fieldset{border:1px solid #ccc;border-radius:.4rem;margin:0 0 1rem;padding:.5rem 1rem}
ul{list-style:none;padding:0}li{border:1px solid #ccc;border-radius:.4rem;padding:.75rem 1rem;margin-bottom:1rem}
.note{color:#333}.error{color:#a50e0e;font-weight:600}
</style></head>
<body data-starts-at="{{.StartsAt}}" data-ends-at="{{.EndsAt}}">
<main>
<h1>Find parking</h1>
<form id="search" method="get" action="/">
<fieldset><legend>When</legend>
<label for="from">From</label>
<input id="from" name="from" type="datetime-local" value="{{.From}}" required>
<label for="until">Until</label>
<input id="until" name="until" type="datetime-local" value="{{.Until}}" required>
<input type="hidden" name="starts_at" id="starts-at" value="" disabled>
<input type="hidden" name="ends_at" id="ends-at" value="" disabled>
</fieldset>
<fieldset><legend>Where</legend>
<label for="name">Lot name</label>
<input id="name" name="name" type="search" value="{{.Name}}" maxlength="100" autocomplete="off">
<input type="hidden" name="lat" id="lat" value="{{.Lat}}">
<input type="hidden" name="lng" id="lng" value="{{.Lng}}">
<p><button type="button" class="plain" id="near" hidden>Lots near me</button></p>
</fieldset>
<button type="submit">Search</button>
</form>
<noscript><p class="note">Without JavaScript the times are read as UTC, and holding a spot is not possible: it needs the page's script.</p></noscript>
<p id="msg" role="status" aria-live="polite">{{if .Error}}<span class="error">{{.Error}}</span>{{end}}</p>
{{if .Searched}}<section aria-labelledby="results-h">
<h2 id="results-h">{{len .Results}} {{if eq (len .Results) 1}}lot{{else}}lots{{end}} found</h2>
<ul>{{range .Results}}
<li><h3>{{.Name}}</h3>
<p>{{if .HasDistance}}{{.DistanceM}} m away · {{end}}{{.Available}} of {{.Total}} spots free · {{.Price}} from <time datetime="{{$.StartsAt}}">{{$.StartsAt}}</time> to <time datetime="{{$.EndsAt}}">{{$.EndsAt}}</time></p>
{{if gt .Available 0}}<form class="hold" data-lot="{{.ID}}" data-starts-at="{{$.StartsAt}}" data-ends-at="{{$.EndsAt}}">
<label for="plate-{{.ID}}">Your number plate</label>
<input id="plate-{{.ID}}" name="plate" required maxlength="16" autocomplete="off" autocapitalize="characters">
<button type="submit">Hold a spot and pay</button>
</form>{{else}}<p class="note">No spot is free for the whole of this time.</p>{{end}}
</li>{{end}}</ul>
</section>{{end}}
</main>
<script>
(function () {
  "use strict";
  var msg = document.getElementById("msg");
  function say(t) { msg.textContent = t; }
  var search = document.getElementById("search");
  var from = document.getElementById("from"), until = document.getElementById("until");
  var startsAt = document.getElementById("starts-at"), endsAt = document.getElementById("ends-at");
  function local(iso) {
    var d = new Date(iso);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }
  var b = document.body;
  if (b.dataset.startsAt && b.dataset.endsAt) { from.value = local(b.dataset.startsAt); until.value = local(b.dataset.endsAt); }
  document.querySelectorAll("time").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) t.textContent = d.toLocaleString();
  });
  search.addEventListener("submit", function () {
    var a = new Date(from.value), b = new Date(until.value);
    if (!isNaN(a) && !isNaN(b)) {
      startsAt.value = a.toISOString(); endsAt.value = b.toISOString();
      startsAt.disabled = false; endsAt.disabled = false;
      from.disabled = true; until.disabled = true;
    }
    if (document.getElementById("name").value) {
      document.getElementById("lat").value = ""; document.getElementById("lng").value = "";
    }
  });
  var near = document.getElementById("near");
  if (navigator.geolocation) {
    near.hidden = false;
    near.addEventListener("click", function () {
      say("Finding where you are…");
      navigator.geolocation.getCurrentPosition(function (p) {
        document.getElementById("lat").value = p.coords.latitude.toFixed(6);
        document.getElementById("lng").value = p.coords.longitude.toFixed(6);
        document.getElementById("name").value = "";
        search.requestSubmit ? search.requestSubmit() : search.submit();
      }, function () { say("Your location is not available; search by name instead."); });
    });
  }
  function key() {
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return "page-" + Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }
  document.querySelectorAll("form.hold").forEach(function (f) {
    var idem = key();
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var button = f.querySelector("button");
      button.disabled = true;
      say("Holding a spot…");
      fetch("/v1/reservations", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": idem },
        body: JSON.stringify({ lot_id: f.dataset.lot, plate: f.plate.value, starts_at: f.dataset.startsAt, ends_at: f.dataset.endsAt })
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (x) {
          if (!r.ok) {
            button.disabled = false;
            var inUse = x.error && x.error.code === "idempotency_key_in_use";
            if (r.status >= 400 && r.status < 500 && r.status !== 429 && !inUse) idem = key();
            say((x.error && x.error.message) || "That did not work (" + r.status + ").");
            return;
          }
          try { localStorage.setItem("parkgate-access-token-" + x.id, x.access_token); } catch (e) {}
          if (x.payment && x.payment.url) location.assign(x.payment.url);
          else location.assign("/reservations/" + x.id + "#access_token=" + encodeURIComponent(x.access_token));
        });
      }, function () {
        button.disabled = false;
        say("No connection. Try again: the same request will not book twice.");
      });
    });
  });
})();
</script>
</body></html>
`))
