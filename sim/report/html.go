package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur":   dur,
	"clock": clock,
	"since": func(t, t0 time.Time) time.Duration { return t.Sub(t0) },
	"money": money,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>parksim {{.S.Scenario}} — {{if .S.Pass}}pass{{else}}FAIL{{end}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:980px;color:#111827;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.sub{color:#6b7280}.pass{color:#047857;font-weight:600}.fail{color:#b91c1c;font-weight:600}
.banner{padding:10px 14px;border-radius:6px;margin:16px 0;font-weight:600}
.banner.pass{background:#ecfdf5;border:1px solid #a7f3d0}.banner.fail{background:#fef2f2;border:1px solid #fecaca}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #f3f4f6;text-align:left;vertical-align:top}
th{font-weight:600;color:#374151;width:190px}td.n{text-align:right;font-variant-numeric:tabular-nums;width:80px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px}
.tile{border:1px solid #e5e7eb;border-radius:6px;padding:8px 10px}.tile b{display:block;font-size:20px}
.chart{width:100%;height:auto;border:1px solid #e5e7eb;border-radius:6px}
ul.v{margin:4px 0 0 18px;padding:0;color:#b91c1c}code{font-size:12px}
</style></head><body>
<h1>parksim · {{.S.Scenario}}</h1>
<div class="sub">{{.S.Config.Lots}} lots × {{.S.Config.Spots}} spots · {{if .S.Config.Load}}load {{printf "%.1f" .S.Config.Rate}} drivers/s{{else}}{{.S.Config.Drivers}} drivers{{end}} · {{.S.Config.Duration}} · seed {{.S.Config.Seed}} · started {{.S.Started.UTC.Format "2006-01-02 15:04:05"}} UTC · hold {{.S.Config.HoldTTL}} · early grace {{.S.Config.EarlyGrace}}</div>
<div class="banner {{if .S.Pass}}pass{{else}}fail{{end}}">{{if .S.Pass}}All {{len .S.Invariants}} invariants hold.{{else}}Invariants failed — see below.{{end}}</div>

<div class="grid">
<div class="tile">journeys<b>{{.S.Journeys.Drivers}}</b></div>
<div class="tile">entered<b>{{.S.Journeys.Entered}}</b></div>
<div class="tile">refunds<b>{{.S.Refunds.Count}} / {{.S.Refunds.Expected}} due</b></div>
<div class="tile">read → barrier p50<b>{{dur .S.Latency.ReadToBarrier.P50}}</b></div>
<div class="tile">read → barrier p99<b>{{dur .S.Latency.ReadToBarrier.P99}}</b></div>
<div class="tile">sync lag p50<b>{{dur .S.Sync.Lag.P50}}</b></div>
<div class="tile">offline decisions<b>{{.S.Offline.Decisions}}</b></div>
</div>

<h2>Invariants</h2>
<table>{{range .S.Invariants}}<tr><td class="{{if .Pass}}pass{{else}}fail{{end}}">{{if .Pass}}PASS{{else}}FAIL{{end}}</td>
<th>{{.Name}}</th><td>{{.Title}}<div class="sub">{{if .Checked}}{{.Checked}} checked{{else}}nothing to check{{end}} · source: {{.Source}}</div>
{{if .Violations}}<ul class="v">{{range .Violations}}<li>{{.}}</li>{{end}}</ul>{{end}}</td></tr>{{end}}</table>

<h2>Gate latency</h2>
{{.Latency}}
<table>
<tr><th>read → barrier</th><td>{{.S.Latency.ReadToBarrier}}</td></tr>
<tr><th>read → answer</th><td>{{.S.Latency.ReadToAnswer}}</td></tr>
<tr><th>decision (agent)</th><td>{{.S.Latency.Decision}}</td></tr>
<tr><th>loop → camera trigger</th><td>{{.S.Latency.LoopToTrigger}} · {{.S.Latency.Untriggered}} cars never triggered the camera</td></tr>
</table>

<h2>Occupancy over time</h2>
{{.Occupancy}}

<h2>Gate events per minute</h2>
{{.Events}}
<div class="sub">buckets of {{.S.Series.EventsBucket}} s, scaled to a per-minute rate</div>

<h2>Journeys</h2>
<table>
<tr><th>booked / refused a hold</th><td>{{.S.Journeys.Booked}} / {{.S.Journeys.HoldRefused}}</td></tr>
<tr><th>paid</th><td>{{.S.Journeys.Paid}} ({{.S.Journeys.PaidLate}} reached the cloud after the hold ended) · {{.S.Journeys.PayAbandoned}} abandoned · {{.S.Journeys.PayRefused}} refused by Stripe</td></tr>
<tr><th>entered / left</th><td>{{.S.Journeys.Entered}} / {{.S.Journeys.Exited}} · {{.S.Journeys.Overstayed}} overstayed</td></tr>
<tr><th>too early · late · no-show</th><td>{{.S.Journeys.TooEarly}} · {{.S.Journeys.CameLate}} · {{.S.Journeys.NoShow}}</td></tr>
<tr><th>cancelled in / out of policy</th><td>{{.S.Journeys.Life.CancelIn}} ({{.S.Journeys.Life.CancelInRefunded}} refunded) / {{.S.Journeys.Life.CancelOut}} ({{.S.Journeys.Life.CancelOutRefused}} refused) · {{.S.Journeys.Life.CodeCancelled}} cancelled codes shown ({{.S.Journeys.Life.CodeCancelledNo}} refused)</td></tr>
<tr><th>extended</th><td>{{.S.Journeys.Life.Extended}} of {{.S.Journeys.Life.ExtendAsked}} asked ({{.S.Journeys.Life.ExtendRefused}} refused)</td></tr>
<tr><th>overstays owed / paid</th><td>{{.S.Journeys.Life.Overstays}} / {{.S.Journeys.Life.OverstaysPaid}}</td></tr>
<tr><th>access code at a blind camera</th><td>{{.S.Journeys.Life.CodeShown}} ({{.S.Journeys.Life.CodeShownIn}} let in)</td></tr>
<tr><th>permit holders</th><td>{{.S.Journeys.Life.Permits}} ({{.S.Journeys.Life.PermitsIn}} let in) · {{.S.Journeys.Life.Revoked}} revoked permits tried ({{.S.Journeys.Life.RevokedRefused}} refused) · {{.S.Journeys.Life.Resets}} presence resets ({{.S.Journeys.Life.ResetsOffline}} to a cut-off edge, {{.S.Journeys.Life.ResetsIn}} let back in)</td></tr>
<tr><th>intruders</th><td>{{.S.Journeys.Intruders}} ({{.S.Journeys.IntrudersIn}} let in)</td></tr>
<tr><th>plans</th><td>{{range $i, $c := .S.Journeys.Plans}}{{if $i}} · {{end}}{{$c.Count}}× {{$c.Key}}{{end}}</td></tr>
</table>

<h2>Holds</h2>
<table>
<tr><th>requests</th><td>{{.S.Holds.Requests}} ({{.S.Holds.Retried}} drivers retried after a timeout; {{.S.Holds.Replayed}} replayed answers; {{.S.Holds.Orphans}} holds orphaned by lost answers)</td></tr>
{{range .S.Holds.Outcomes}}<tr><th>{{.Key}}</th><td class="n">{{.Count}}</td></tr>{{end}}
<tr><th>latency</th><td>{{.S.Holds.Latency}}</td></tr>
</table>

<h2>Decisions by reason</h2>
<table>{{range .S.Decisions}}<tr><th>{{.Key}}</th><td class="n">{{.Count}}</td></tr>{{end}}</table>

<h2>Sync and faults</h2>
<table>
<tr><th>gate events, edge → cloud (online)</th><td>{{.S.Sync.Lag}}</td></tr>
<tr><th>gate events, edge → cloud (offline)</th><td>{{.S.Sync.OfflineLag}}</td></tr>
<tr><th>reservations, cloud → edge</th><td>{{.S.Sync.Down}} <span class="sub">(edges sampled every {{.S.Sync.DownEvery}})</span></td></tr>
<tr><th>gate events in the cloud</th><td>{{.S.Sync.Events}}</td></tr>
<tr><th>offline decisions</th><td>{{.S.Offline.Decisions}} ({{.S.Offline.Opens}} opened) · {{.S.Offline.Flagged}} flagged offline by the edges</td></tr>
<tr><th>webhooks</th><td>{{.S.Webhooks.Events}} events, {{.S.Webhooks.Deliveries}} deliveries</td></tr>
{{$t0 := .S.Started}}{{range .S.Faults}}<tr><th>{{.Kind}}</th><td>{{clock (since .At $t0)}}{{if not .Until.IsZero}}–{{clock (since .Until $t0)}}{{end}} {{.Target}} {{.Detail}}</td></tr>{{end}}
{{with .S.Load}}<tr><th>throughput</th><td>{{printf "%.1f" .HoldsPerSec}} holds/s · {{printf "%.1f" .ReadsPerSec}} reads/s · {{printf "%.1f" .EntriesPerS}} entries/s</td></tr>{{end}}
<tr><th>run</th><td>traffic {{.S.RunFor}} · settled in {{.S.SettledIn}}</td></tr>
</table>

<h2>Lots</h2>
<table>{{range .S.Lots}}<tr><th>{{.Name}}</th><td><code>{{.ID}}</code> · {{.Spots}} spots · edge {{.EdgeURL}}</td></tr>{{end}}</table>
<p class="sub">The same data: <code>report.json</code> next to this file.</p>
</body></html>
`))

// WriteHTML writes the self-contained page.
func (s *Summary) WriteHTML(w io.Writer) error {
	return page.Execute(w, struct {
		S                          *Summary
		Latency, Occupancy, Events template.HTML
	}{
		S:         s,
		Latency:   LatencyChart(s.Series.Latency, s.Series.LatencyKind),
		Occupancy: OccupancyChart(s.Series.Occupancy, s.Series.Capacity, s.Series.Faults, s.Series.RunSeconds),
		Events:    EventsChart(s.Series.EventsOpen, s.Series.EventsDeny, s.Series.EventsBucket, s.Series.Faults, s.Series.RunSeconds),
	})
}

// WriteJSON writes the summary as indented JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteFiles writes report.json and report.html into a new directory named
// after the start time under root, and records the paths in s.Files.
func (s *Summary) WriteFiles(root string) error {
	name := s.Started.UTC().Format("20060102-150405") + "-" + sanitize(s.Scenario)
	dir := filepath.Join(root, name)
	for i := 2; ; i++ {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		dir = filepath.Join(root, fmt.Sprintf("%s-%d", name, i))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	s.Files = Files{Dir: dir, JSON: filepath.Join(dir, "report.json"), HTML: filepath.Join(dir, "report.html")}
	if err := writeFile(s.Files.JSON, s.WriteJSON); err != nil {
		return err
	}
	return writeFile(s.Files.HTML, s.WriteHTML)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	return f.Close()
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
}
