package httpapi

import (
	"html/template"
	"net/http"
)

// The operator console (GET /console). The page is public HTML with no data
// in it: the operator types the admin token, which the page's one script
// keeps in the tab's sessionStorage and sends to the JSON API as a bearer
// token, as the reservation page does with a driver's token. Every value
// the API answers is put into the page as text (textContent, never as
// markup), so nothing an API field holds — a plate, a webhook URL — can
// become script.
//
// Remote open goes down the lot's change stream (POST
// /v1/lots/{id}/gates/{gate_id}/open): the gate's computer opens once if it
// hears of it within booking.RemoteOpenValidity.

// consoleTmpl is the console's page. No template actions: the script and
// the style are hashed from this text for the CSP, and neither may hold a
// comment (html/template drops comments when it renders, and the hash would
// no longer be that of the bytes served).
var consoleTmpl = template.Must(template.New("console").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Operator console · parkgate</title>
<style>
body{font:1rem/1.5 system-ui,sans-serif;color:#111;background:#fff;margin:0 auto;padding:1rem;max-width:60rem}
h1{font-size:1.5rem;line-height:1.25}h2{font-size:1.15rem;margin-top:2rem;border-top:1px solid #ccc;padding-top:1rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
button,input,select{font:inherit;min-height:44px}
button{background:#0b57d0;color:#fff;border:0;border-radius:.4rem;padding:.5rem 1rem;cursor:pointer;margin:0 .25rem .5rem 0}
button.danger{background:#a50e0e}button.plain{background:#444}
:focus-visible{outline:3px solid #e8710a;outline-offset:2px}
label,legend{display:block;font-weight:600;margin-bottom:.25rem}
input,select{border:1px solid #444;border-radius:.4rem;padding:.25rem .5rem;width:100%;box-sizing:border-box;margin-bottom:.5rem}
input[type=checkbox]{width:auto;min-height:0;margin:0 .5rem 0 0}
label.check{font-weight:400;display:flex;align-items:center;min-height:44px;margin:0}
fieldset{border:1px solid #ccc;border-radius:.4rem;margin:0 0 .5rem;padding:.5rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:0 1rem}
.scroll{overflow-x:auto;margin-bottom:.5rem}
table{border-collapse:collapse;width:100%;font-size:.95rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd;vertical-align:top;overflow-wrap:anywhere}
td button{min-height:36px;padding:.25rem .75rem;margin:0}
.online{color:#0a6b2b;font-weight:600}.offline{color:#a50e0e;font-weight:600}
.note{color:#333}
#msg{min-height:1.5rem;font-weight:600}
#secret{border:2px solid #e8710a;border-radius:.4rem;padding:.5rem;overflow-wrap:anywhere}
code{font-family:ui-monospace,monospace}
</style></head>
<body>
<main>
<h1>Operator console</h1>
<noscript><p>This console needs JavaScript: it reads the API with your admin token.</p></noscript>
<p id="msg" role="status" aria-live="polite"></p>

<section aria-labelledby="token-h">
<h2 id="token-h">Admin token</h2>
<form id="token-form">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Use token</button>
<button type="button" id="forget" class="plain">Forget token</button>
</form>
<p id="token-state" class="note">No token given yet. It is kept only in this tab until you forget it or close the tab.</p>
</section>

<section aria-labelledby="lot-h">
<h2 id="lot-h">Lot</h2>
<form id="lot-form">
<label for="lot-id">Lot id</label>
<input id="lot-id" name="lot" list="recent-lots" autocomplete="off" spellcheck="false" required>
<datalist id="recent-lots"></datalist>
<button type="submit">Show lot</button>
</form>
<div id="lot-view" hidden>
<dl>
<dt>Name</dt><dd id="lot-name"></dd>
<dt>State</dt><dd id="lot-state"></dd>
<dt>Inside</dt><dd id="lot-inside"></dd>
<dt>Counted at</dt><dd id="lot-updated"></dd>
<dt>Hourly rate</dt><dd id="lot-rate"></dd>
</dl>
<button type="button" id="lot-toggle" class="danger">Close lot</button>
<button type="button" id="lot-refresh" class="plain">Refresh</button>
</div>
</section>

<section aria-labelledby="edges-h" data-needs-lot hidden>
<h2 id="edges-h">Edges</h2>
<p id="edges-seq" class="note"></p>
<div class="scroll"><table>
<caption class="note">Gate computers of this lot as the cloud last heard of them</caption>
<thead><tr><th scope="col">Gate</th><th scope="col">Status</th><th scope="col">Last seen</th><th scope="col">Applied change</th></tr></thead>
<tbody id="edges"></tbody></table></div>
<h3 id="open-h">Remote open</h3>
<form id="open-form" aria-labelledby="open-h">
<label for="open-gate">Gate</label>
<input id="open-gate" required maxlength="64" list="gate-ids" autocomplete="off">
<datalist id="gate-ids"></datalist>
<label for="open-reason">Reason (kept with the gate event)</label>
<input id="open-reason" required maxlength="200" autocomplete="off">
<button type="submit">Open the barrier</button>
</form>
<p class="note">The gate opens once, if its computer hears of it within 30 seconds; one that is offline longer does not open later.</p>
</section>

<section aria-labelledby="events-h" data-needs-lot hidden>
<h2 id="events-h">Live gate events</h2>
<p class="note">Newest first; the last 200 are kept. Updated every few seconds.</p>
<button type="button" id="events-pause" class="plain" aria-pressed="false">Pause</button>
<div class="scroll"><table>
<thead><tr><th scope="col">Time</th><th scope="col">Gate</th><th scope="col">Direction</th><th scope="col">Plate</th><th scope="col">Decision</th><th scope="col">Reason</th></tr></thead>
<tbody id="events"></tbody></table></div>
</section>

<section aria-labelledby="res-h" data-needs-lot hidden>
<h2 id="res-h">Reservations</h2>
<form id="res-form"><div class="grid">
<div><label for="res-status">Status</label>
<select id="res-status" name="status">
<option value="">Any</option><option>PENDING</option><option>CONFIRMED</option><option>CHECKED_IN</option>
<option>COMPLETED</option><option>EXPIRED</option><option>CANCELLED</option><option>REFUNDED</option>
</select></div>
<div><label for="res-plate">Plate</label>
<input id="res-plate" name="plate" autocomplete="off" spellcheck="false"></div>
<div><label for="res-from">Starting from (your local time)</label>
<input id="res-from" name="from" type="datetime-local"></div>
<div><label for="res-to">Starting before (your local time)</label>
<input id="res-to" name="to" type="datetime-local"></div>
</div>
<button type="submit">Search</button>
</form>
<div class="scroll"><table>
<thead><tr><th scope="col">Plate</th><th scope="col">Status</th><th scope="col">From</th><th scope="col">Until</th><th scope="col">Price</th><th scope="col">Refunded</th><th scope="col">Id</th><th scope="col">Action</th></tr></thead>
<tbody id="res"></tbody></table></div>
<button type="button" id="res-more" class="plain" hidden>More</button>
</section>

<section aria-labelledby="permits-h" data-needs-lot hidden>
<h2 id="permits-h">Permits</h2>
<form id="permit-form"><div class="grid">
<div><label for="permit-plate">Plate</label>
<input id="permit-plate" name="plate" autocomplete="off" spellcheck="false" required></div>
<div><label for="permit-label">Label</label>
<input id="permit-label" name="label" autocomplete="off"></div>
<div><label for="permit-from">Valid from (your local time)</label>
<input id="permit-from" name="valid_from" type="datetime-local" required></div>
<div><label for="permit-until">Valid until (your local time)</label>
<input id="permit-until" name="valid_until" type="datetime-local" required></div>
</div>
<button type="submit">Add permit</button>
</form>
<div class="scroll"><table>
<thead><tr><th scope="col">Plate</th><th scope="col">Label</th><th scope="col">Valid from</th><th scope="col">Valid until</th><th scope="col">Action</th></tr></thead>
<tbody id="permits"></tbody></table></div>
</section>

<section aria-labelledby="presence-h" data-needs-lot hidden>
<h2 id="presence-h">Presence reset</h2>
<p class="note">Tells the lot's gates to forget that a plate is inside, say after a missed exit. The gates apply it when they next sync.</p>
<form id="presence-form">
<label for="presence-plate">Plate</label>
<input id="presence-plate" name="plate" autocomplete="off" spellcheck="false" required>
<button type="submit" class="danger">Reset presence</button>
</form>
</section>

<section aria-labelledby="alerts-h">
<h2 id="alerts-h">Alert endpoints</h2>
<p class="note">Endpoints hear of every lot. Each delivery is signed with the endpoint's secret, shown once when it is made.</p>
<form id="alert-form">
<label for="alert-url">URL</label>
<input id="alert-url" name="url" type="url" autocomplete="off" spellcheck="false" required>
<fieldset><legend>Events</legend>
<label class="check" for="ev-edge-offline"><input type="checkbox" id="ev-edge-offline" name="events" value="edge.offline" checked>edge.offline</label>
<label class="check" for="ev-edge-online"><input type="checkbox" id="ev-edge-online" name="events" value="edge.online" checked>edge.online</label>
<label class="check" for="ev-denied"><input type="checkbox" id="ev-denied" name="events" value="gate.denied_repeatedly" checked>gate.denied_repeatedly</label>
<label class="check" for="ev-overstayed"><input type="checkbox" id="ev-overstayed" name="events" value="reservation.overstayed" checked>reservation.overstayed</label>
<label class="check" for="ev-cancelled"><input type="checkbox" id="ev-cancelled" name="events" value="reservation.cancelled" checked>reservation.cancelled</label>
<label class="check" for="ev-refunded"><input type="checkbox" id="ev-refunded" name="events" value="payment.refunded" checked>payment.refunded</label>
</fieldset>
<button type="submit">Add endpoint</button>
<button type="button" id="alerts-refresh" class="plain">Refresh list</button>
</form>
<div id="secret" hidden>
<p>Signing secret of the new endpoint, shown only this once: copy it now.</p>
<p><code id="secret-value"></code></p>
<button type="button" id="secret-done" class="plain">I have copied it</button>
</div>
<div class="scroll"><table>
<thead><tr><th scope="col">URL</th><th scope="col">Events</th><th scope="col">Made</th><th scope="col">Action</th></tr></thead>
<tbody id="alerts"></tbody></table></div>
</section>
</main>
<script>
(function () {
  "use strict";
  var TOKEN = "parkgate-admin-token", LOTS = "parkgate-console-lots";
  var token = null, lot = null, lotClosed = false, gen = 0;
  var lastSeq = 0, paused = false, cursor = null, resQuery = {};
  function $(id) { return document.getElementById(id); }
  var msg = $("msg");
  function say(t) { msg.textContent = t; }
  try { token = sessionStorage.getItem(TOKEN); } catch (e) {}
  function showToken() {
    $("token-state").textContent = token ? "A token is in use in this tab." :
      "No token given yet. It is kept only in this tab until you forget it or close the tab.";
  }
  function setToken(t) {
    token = t || null;
    try { if (token) sessionStorage.setItem(TOKEN, token); else sessionStorage.removeItem(TOKEN); } catch (e) {}
    showToken();
  }
  function askToken(text) {
    setToken(null);
    say(text);
    $("token").focus();
  }
  function key() {
    var a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return "console-" + Array.prototype.map.call(a, function (x) { return (x + 256).toString(16).slice(1); }).join("");
  }
  function api(method, path, params, opt) {
    opt = opt || {};
    var url = path.replace(/\{(\w+)\}/g, function (m, k) { return encodeURIComponent(params[k]); });
    var q = [];
    Object.keys(opt.query || {}).forEach(function (k) {
      var v = opt.query[k];
      if (v !== "" && v !== null && v !== undefined) q.push(k + "=" + encodeURIComponent(v));
    });
    if (q.length) url += "?" + q.join("&");
    var h = opt.headers || {};
    if (!token) return Promise.reject({ status: 401, message: "Give the admin token first." });
    h.Authorization = "Bearer " + token;
    if (opt.body) h["Content-Type"] = "application/json";
    return fetch(url, { method: method, headers: h, body: opt.body ? JSON.stringify(opt.body) : undefined, cache: "no-store" })
      .then(function (r) {
        if (r.ok) return r.status === 204 ? null : r.json();
        return r.json().then(function (e) {
          throw { status: r.status, message: (e.error && e.error.message) || "That did not work (" + r.status + ")." };
        }, function () { throw { status: r.status, message: "That did not work (" + r.status + ")." }; });
      }, function () { throw { status: 0, message: "No connection to the server." }; });
  }
  function failed(e) {
    if (e && e.status === 401) { askToken("The admin token was not accepted. Please give it again."); return; }
    say((e && e.message) || "That did not work.");
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function when(t) {
    if (!t) return "—";
    var d = new Date(t);
    return isNaN(d) ? String(t) : d.toLocaleString();
  }
  function money(m) {
    if (!m || typeof m.amount !== "number") return "";
    try {
      var f = new Intl.NumberFormat(undefined, { style: "currency", currency: m.currency });
      return f.format(m.amount / Math.pow(10, f.resolvedOptions().maximumFractionDigits));
    } catch (e) { return m.amount + " " + m.currency; }
  }
  function iso(v) {
    if (!v) return "";
    var d = new Date(v);
    return isNaN(d) ? null : d.toISOString().replace(/\.\d{3}Z$/, "Z");
  }
  function button(text, cls, fn) {
    var b = el("button", text, cls);
    b.type = "button";
    b.addEventListener("click", fn);
    return b;
  }
  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (c) {
      var td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? "" : String(c);
      tr.appendChild(td);
    });
    return tr;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function empty(tbody, cols, text) {
    var td = el("td", text, "note");
    td.colSpan = cols;
    var tr = document.createElement("tr");
    tr.appendChild(td);
    tbody.appendChild(tr);
  }

  function recent() {
    try { return JSON.parse(localStorage.getItem(LOTS) || "[]").filter(function (x) { return typeof x === "string"; }); } catch (e) { return []; }
  }
  function remember(id) {
    var l = [id].concat(recent().filter(function (x) { return x !== id; })).slice(0, 8);
    try { localStorage.setItem(LOTS, JSON.stringify(l)); } catch (e) {}
    showRecent();
  }
  function showRecent() {
    var dl = $("recent-lots");
    clear(dl);
    recent().forEach(function (id) { var o = document.createElement("option"); o.value = id; dl.appendChild(o); });
  }

  function showLot(l) {
    lotClosed = !!l.closed;
    $("lot-name").textContent = l.name;
    $("lot-state").textContent = l.state;
    $("lot-inside").textContent = (l.occupancy ? l.occupancy.inside : "?") + " of " + l.total_spots + " spots";
    $("lot-updated").textContent = when(l.occupancy && l.occupancy.updated_at);
    $("lot-rate").textContent = money(l.hourly_rate);
    var t = $("lot-toggle");
    t.textContent = lotClosed ? "Reopen lot" : "Close lot";
    t.className = lotClosed ? "" : "danger";
    $("lot-view").hidden = false;
  }
  function loadLot() {
    return api("GET", "/v1/lots/{id}", { id: lot }).then(showLot, failed);
  }
  function loadEdges() {
    var tb = $("edges");
    return api("GET", "/v1/lots/{id}/edges", { id: lot }).then(function (x) {
      clear(tb);
      $("edges-seq").textContent = "Newest change of the lot: " + x.lot_seq;
      if (!x.gates.length) empty(tb, 4, "No gate has reported yet.");
      var ids = $("gate-ids");
      clear(ids);
      x.gates.forEach(function (g) {
        tb.appendChild(row([g.gate_id, el("span", g.status, g.status === "online" ? "online" : "offline"),
          when(g.last_seen), g.applied_seq + (g.applied_seq < x.lot_seq ? " (behind)" : "")]));
        var o = document.createElement("option");
        o.value = g.gate_id;
        ids.appendChild(o);
      });
    }, function (e) {
      clear(tb);
      if (e.status === 401) return failed(e);
      empty(tb, 4, e.message);
    });
  }
  function eventRow(ev) {
    var why = ev.reason || "";
    if (ev.note) why += (why ? ": " : "") + ev.note;
    if (ev.offline) why += " (decided offline)";
    return row([when(ev.occurred_at), ev.gate_id, ev.direction, ev.plate, ev.decision, why]);
  }
  function pollEvents(g) {
    if (g !== gen) return;
    if (paused || document.hidden || !token) { setTimeout(function () { pollEvents(g); }, 3000); return; }
    api("GET", "/v1/lots/{id}/gate-events", { id: lot }, { query: { after: lastSeq, limit: 500 } }).then(function (x) {
      if (g !== gen) return;
      var tb = $("events");
      x.events.slice(-200).forEach(function (ev) { tb.insertBefore(eventRow(ev), tb.firstChild); });
      while (tb.rows.length > 200) tb.deleteRow(tb.rows.length - 1);
      lastSeq = x.last;
      setTimeout(function () { pollEvents(g); }, x.events.length === 500 ? 0 : 3000);
    }, function (e) {
      if (g !== gen) return;
      if (e.status === 401) { failed(e); return; }
      say("Gate events: " + e.message);
      setTimeout(function () { pollEvents(g); }, 10000);
    });
  }
  function loadRes(more) {
    var tb = $("res"), q = resQuery;
    if (!more) {
      q = { status: $("res-status").value, plate: $("res-plate").value.trim(), limit: 50 };
      var from = iso($("res-from").value), to = iso($("res-to").value);
      if (from === null || to === null) { say("Please give the times in full."); return; }
      q.from = from; q.to = to;
      resQuery = q;
    }
    q.cursor = more ? cursor : "";
    api("GET", "/v1/lots/{id}/reservations", { id: lot }, { query: q }).then(function (x) {
      if (!more) clear(tb);
      if (!more && !x.reservations.length) empty(tb, 8, "No reservations match.");
      x.reservations.forEach(function (r) { tb.appendChild(resRow(r)); });
      cursor = x.next_cursor;
      $("res-more").hidden = !cursor;
    }, failed);
  }
  function resRow(r) {
    var refunded = r.refund ? money({ amount: r.refund.amount, currency: r.refund.currency }) + " " + r.refund.status : "";
    return row([r.plate, r.status, when(r.starts_at), when(r.ends_at), money(r.price), refunded, r.id,
      button("Refund", "danger", function () { refund(r); })]);
  }
  function refund(r) {
    var a = prompt("Refund for " + r.plate + ": amount in minor units (cents). Leave empty for all that is left of what was paid.", "");
    if (a === null) return;
    a = a.trim();
    var body = {};
    if (a !== "") {
      if (!/^\d+$/.test(a)) { say("The amount must be a whole number of minor units, such as 250."); return; }
      body.amount = parseInt(a, 10);
    }
    api("POST", "/v1/reservations/{id}/refund", { id: r.id }, { body: body, headers: { "Idempotency-Key": key() } }).then(function (x) {
      say("Refund asked for " + r.plate + ": " + (x.refund ? money(x.refund) + " " + x.refund.status : "done") + ".");
      loadRes(false);
    }, failed);
  }
  function loadPermits() {
    var tb = $("permits");
    return api("GET", "/v1/lots/{id}/permits", { id: lot }).then(function (x) {
      clear(tb);
      if (!x.permits.length) empty(tb, 5, "No permits.");
      x.permits.forEach(function (p) {
        tb.appendChild(row([p.plate, p.label, when(p.valid_from), when(p.valid_until), button("Revoke", "danger", function () {
          if (!confirm("Revoke the permit of " + p.plate + "?")) return;
          api("DELETE", "/v1/lots/{id}/permits/{permit_id}", { id: lot, permit_id: p.id }).then(function () {
            say("Permit of " + p.plate + " revoked.");
            loadPermits();
          }, failed);
        })]));
      });
    }, failed);
  }
  function loadAlerts() {
    var tb = $("alerts");
    return api("GET", "/v1/webhook-endpoints", {}).then(function (x) {
      clear(tb);
      if (!x.webhook_endpoints.length) empty(tb, 4, "No alert endpoints.");
      x.webhook_endpoints.forEach(function (w) {
        tb.appendChild(row([w.url, w.events.join(", "), when(w.created_at), button("Delete", "danger", function () {
          if (!confirm("Delete the endpoint " + w.url + "? What it has not yet received is not sent.")) return;
          api("DELETE", "/v1/webhook-endpoints/{id}", { id: w.id }).then(function () {
            say("Endpoint deleted.");
            loadAlerts();
          }, failed);
        })]));
      });
    }, function (e) {
      clear(tb);
      if (e.status === 401) return failed(e);
      empty(tb, 4, e.message);
    });
  }
  function openLot(id) {
    lot = id;
    gen++;
    lastSeq = 0;
    cursor = null;
    clear($("events"));
    clear($("res"));
    return api("GET", "/v1/lots/{id}", { id: lot }).then(function (l) {
      showLot(l);
      remember(lot);
      say("Showing " + l.name + ".");
      document.querySelectorAll("[data-needs-lot]").forEach(function (s) { s.hidden = false; });
      loadEdges();
      loadRes(false);
      loadPermits();
      pollEvents(gen);
    }, function (e) {
      $("lot-view").hidden = true;
      document.querySelectorAll("[data-needs-lot]").forEach(function (s) { s.hidden = true; });
      failed(e);
    });
  }

  $("token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    setToken($("token").value.trim());
    $("token").value = "";
    say("Token kept for this tab.");
    loadAlerts();
    if (lot) openLot(lot);
  });
  $("forget").addEventListener("click", function () {
    setToken(null);
    gen++;
    document.querySelectorAll("[data-needs-lot]").forEach(function (s) { s.hidden = true; });
    $("lot-view").hidden = true;
    clear($("alerts"));
    say("Token forgotten.");
  });
  $("lot-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    openLot($("lot-id").value.trim());
  });
  $("lot-refresh").addEventListener("click", function () { loadLot(); loadEdges(); loadPermits(); });
  $("lot-toggle").addEventListener("click", function () {
    var closing = !lotClosed;
    if (closing && !confirm("Close this lot? No new bookings are taken while it is closed.")) return;
    api("PATCH", "/v1/lots/{id}", { id: lot }, { body: { closed: closing } }).then(function (l) {
      showLot(l);
      say(closing ? "Lot closed." : "Lot reopened.");
    }, failed);
  });
  $("events-pause").addEventListener("click", function () {
    paused = !paused;
    this.textContent = paused ? "Resume" : "Pause";
    this.setAttribute("aria-pressed", String(paused));
  });
  $("res-form").addEventListener("submit", function (ev) { ev.preventDefault(); loadRes(false); });
  $("res-more").addEventListener("click", function () { loadRes(true); });
  $("permit-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var from = iso($("permit-from").value), until = iso($("permit-until").value);
    if (!from || !until) { say("Please give both times of the permit."); return; }
    api("POST", "/v1/lots/{id}/permits", { id: lot }, { body: {
      plate: $("permit-plate").value.trim(), valid_from: from, valid_until: until, label: $("permit-label").value.trim()
    } }).then(function (p) {
      say("Permit added for " + p.plate + ".");
      $("permit-form").reset();
      loadPermits();
    }, failed);
  });
  $("open-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var gate = $("open-gate").value.trim(), reason = $("open-reason").value.trim();
    if (!confirm("Open the barrier of " + gate + " now?")) return;
    api("POST", "/v1/lots/{id}/gates/{gate_id}/open", { id: lot, gate_id: gate }, { body: { reason: reason } }).then(function (x) {
      say("Open sent to " + gate + " (change " + x.seq + "); it opens if the gate hears of it by " + when(x.not_after) + ".");
      $("open-reason").value = "";
    }, failed);
  });
  $("presence-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var plate = $("presence-plate").value.trim();
    if (!confirm("Tell the gates that " + plate + " is no longer inside?")) return;
    api("POST", "/v1/lots/{id}/presence/{plate}/reset", { id: lot, plate: plate }).then(function () {
      say("Presence of " + plate + " reset; the gates apply it when they next sync.");
      $("presence-form").reset();
    }, failed);
  });
  $("alert-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var events = [];
    document.querySelectorAll("#alert-form input[name=events]:checked").forEach(function (c) { events.push(c.value); });
    api("POST", "/v1/webhook-endpoints", {}, { body: { url: $("alert-url").value.trim(), events: events } }).then(function (w) {
      $("secret-value").textContent = w.secret;
      $("secret").hidden = false;
      $("alert-url").value = "";
      say("Endpoint added. Copy its secret now: it is not shown again.");
      loadAlerts();
    }, failed);
  });
  $("secret-done").addEventListener("click", function () {
    $("secret-value").textContent = "";
    $("secret").hidden = true;
  });
  $("alerts-refresh").addEventListener("click", loadAlerts);

  showToken();
  showRecent();
  if (token) {
    loadAlerts();
    var r = recent();
    if (r.length) { $("lot-id").value = r[0]; openLot(r[0]); }
  } else {
    say("Give the admin token to start.");
  }
})();
</script>
</body></html>
`))

// consolePageCSP is the console's Content-Security-Policy: as the
// reservation page's, its one script and one style block by their hashes,
// and fetches only to this origin (the API). No images, no frames.
var consolePageCSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"connect-src 'self'; " +
	"script-src " + inlineHash(consoleTmpl, "<script>", "</script>") + "; " +
	"style-src " + inlineHash(consoleTmpl, "<style>", "</style>")

// consolePage is GET /console: the same page for everyone; what it shows
// comes from the API with the token the operator gives it.
func (s *Server) consolePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", consolePageCSP)
	w.WriteHeader(http.StatusOK)
	if err := consoleTmpl.Execute(w, nil); err != nil {
		s.Log.Warn("render console", "err", err)
	}
}
