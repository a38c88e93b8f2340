package failover

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parkgate/parkgate/cloud/guard"
	"github.com/parkgate/parkgate/internal/testkit/proc"
	"github.com/parkgate/parkgate/internal/testkit/rediskeys"
	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

// AdminToken is the operator token the drill's parkcloud accepts.
const AdminToken = "drill-admin-token"

// Cloud is bin/parkcloud serving as its own process, with a Stripe
// stand-in whose signed webhooks confirm the holds it pays.
type Cloud struct {
	Base  string // http://host:port
	Fake  *stripefake.Fake
	cmd   *exec.Cmd
	done  chan struct{}
	log   string
	fsrv  *httptest.Server
	lotMu sync.Mutex

	redisURL, namespace string // the guard's keys, dropped at Close
}

// StartCloud starts bin at a free port on databaseURL and redisURL ("" for
// no guard), without MQTT (the drill is about the API and its stores).
func StartCloud(bin, databaseURL, redisURL, dir string) (*Cloud, error) {
	fake := stripefake.New(stripefake.Options{RetryBase: 200 * time.Millisecond, RetryCap: 2 * time.Second, MaxAttempts: 100})
	fsrv := httptest.NewServer(fake)
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	var ns [4]byte
	_, _ = rand.Read(ns[:])
	c := &Cloud{Base: "http://" + addr, Fake: fake, fsrv: fsrv, log: filepath.Join(dir, "parkcloud.log"), done: make(chan struct{}),
		redisURL: redisURL, namespace: "drill-" + hex.EncodeToString(ns[:])}
	fake.SetWebhook(c.Base+"/v1/payments/webhook", "whsec_drill")
	logf, err := os.Create(c.log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+databaseURL, "REDIS_URL="+redisURL, "MQTT_URL=",
		"PARKGATE_HTTP_ADDR="+addr, "PARKGATE_ADMIN_TOKEN="+AdminToken,
		"PARKGATE_REDIS_NAMESPACE="+c.namespace,
		"PARKGATE_LOT_RATE=100000/100000", "PARKGATE_CLIENT_RATE=100000/100000",
		"PARKGATE_DB_MAX_CONNS=10",
		"STRIPE_SECRET_KEY=sk_test_drill", "STRIPE_WEBHOOK_SECRET=whsec_drill", "STRIPE_API_BASE="+fsrv.URL)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start parkcloud: %w", err)
	}
	c.cmd = cmd
	go func() { _ = cmd.Wait(); logf.Close(); close(c.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(c.Base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c, nil
			}
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("parkcloud exited at start:\n%s", c.Log())
		default:
		}
		if time.Now().After(deadline) {
			c.Close()
			return nil, fmt.Errorf("parkcloud did not come up in 60s:\n%s", c.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log is parkcloud's output.
func (c *Cloud) Log() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// Close stops parkcloud and the stand-in, and drops the guard's keys from
// the Redis it shares with others: a drill stores some 2,000 answers that
// would otherwise live their day (each start has a namespace of its own, so
// nothing later reads them).
func (c *Cloud) Close() {
	if c.cmd != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	c.fsrv.Close()
	c.Fake.Close()
	if c.redisURL == "" {
		return
	}
	rdb, err := guard.NewUniversalClient(c.redisURL) // a plain Redis or a Sentinel group's
	if err != nil {
		return
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = rediskeys.Drop(ctx, rdb, c.namespace) // a failed drop leaves keys that expire
}

// CreateLot makes a paid lot with spots spots and returns its id.
func (c *Cloud) CreateLot(name string, spots int) (string, error) {
	body := fmt.Sprintf(`{"name":%q,"latitude":52.52,"longitude":13.40,"time_zone":"Europe/Berlin","spots":%d,"hourly_rate":{"amount":250,"currency":"EUR"}}`, name, spots)
	req, _ := http.NewRequest("POST", c.Base+"/v1/lots", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || json.Unmarshal(b, &out) != nil || out.ID == "" {
		return "", fmt.Errorf("create lot: %d %s", resp.StatusCode, b)
	}
	return out.ID, nil
}

// Hold is one hold the load made, as its client saw it.
type Hold struct {
	Key, Body   string
	ID, Session string
	At          time.Time // when the 201 came
	Paid        bool
	ConfirmedAt time.Time // when a client first read it CONFIRMED; zero if never
}

// Answer is one HTTP attempt: when, and its status (0: no answer).
type Answer struct {
	At     time.Time
	Status int
	Code   string // the error code of a 4xx/5xx
}

// Load drives holds through the API, pays each at the stand-in, and watches
// them become CONFIRMED. A hold answered 503 (or not at all) is retried with
// the same Idempotency-Key, as the API asks clients to.
type Load struct {
	Cloud   *Cloud
	Lots    []string
	Spots   int // per lot
	Workers int
	Start   time.Time // the first window's start

	mu      sync.Mutex
	holds   []*Hold
	answers []Answer
	next    int
}

// Run drives the load until ctx ends.
func (l *Load) Run(ctx context.Context) {
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range l.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l.one(ctx, client)
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); l.watch(ctx, client) }()
	wg.Wait()
}

func (l *Load) one(ctx context.Context, client *http.Client) {
	l.mu.Lock()
	i := l.next
	l.next++
	l.mu.Unlock()
	lot := l.Lots[i%len(l.Lots)]
	// Each hold its own spot-hour: a conflict would be the load's fault.
	w := l.Start.Add(time.Duration(i/(len(l.Lots)*l.Spots)) * time.Hour)
	body := fmt.Sprintf(`{"lot_id":%q,"plate":"DR%06d","starts_at":%q,"ends_at":%q}`, lot, i,
		w.Format(time.RFC3339), w.Add(time.Hour).Format(time.RFC3339))
	key := fmt.Sprintf("drill-%d-%d", l.Start.Unix(), i)
	for ctx.Err() == nil {
		status, code, out := l.post(ctx, client, key, body)
		if ctx.Err() != nil && status == 0 {
			return // our own stop, not the system's answer
		}
		l.mu.Lock()
		l.answers = append(l.answers, Answer{At: time.Now(), Status: status, Code: code})
		l.mu.Unlock()
		switch {
		case status == 201:
			h := &Hold{Key: key, Body: body, ID: out.ID, At: time.Now()}
			if out.Payment != nil {
				h.Session = out.Payment.SessionID
			}
			if _, err := l.Cloud.Fake.Pay(h.Session); err == nil {
				h.Paid = true
			}
			l.mu.Lock()
			l.holds = append(l.holds, h)
			l.mu.Unlock()
			return
		case status == 0 || status == 503 || code == "idempotency_key_in_use":
			// Retry the same key, as the 503 asks; a first attempt cut off
			// mid-flight may still hold the key for a moment.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		default:
			return
		}
	}
}

type holdOut struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Payment *struct {
		SessionID string `json:"session_id"`
	} `json:"payment"`
	Error *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func (l *Load) post(ctx context.Context, client *http.Client, key, body string) (int, string, holdOut) {
	req, _ := http.NewRequestWithContext(ctx, "POST", l.Cloud.Base+"/v1/reservations", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	var out holdOut
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	code := ""
	if out.Error != nil {
		code = out.Error.Code
	}
	return resp.StatusCode, code, out
}

// watch reads each paid, not yet confirmed hold until a client sees it
// CONFIRMED: the moment a driver would be told "booked".
func (l *Load) watch(ctx context.Context, client *http.Client) {
	for ctx.Err() == nil {
		l.ConfirmPass(ctx, client)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ConfirmPass reads every paid hold not yet seen CONFIRMED once, and
// returns how many are still unconfirmed.
func (l *Load) ConfirmPass(ctx context.Context, client *http.Client) int {
	l.mu.Lock()
	var todo []*Hold
	for _, h := range l.holds {
		if h.Paid && h.ConfirmedAt.IsZero() {
			todo = append(todo, h)
		}
	}
	l.mu.Unlock()
	left := 0
	for _, h := range todo {
		req, _ := http.NewRequestWithContext(ctx, "GET", l.Cloud.Base+"/v1/reservations/"+h.ID, nil)
		resp, err := client.Do(req)
		if err != nil {
			left++
			continue
		}
		var out holdOut
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode == 200 && out.Status == "CONFIRMED" {
			l.mu.Lock()
			h.ConfirmedAt = time.Now()
			l.mu.Unlock()
		} else {
			left++
		}
	}
	return left
}

// Settle waits (up to d) for the stand-in's webhooks to be delivered and
// every paid hold to be read CONFIRMED, and returns how many are not.
func (l *Load) Settle(d time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_ = l.Cloud.Fake.Flush(ctx)
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		left := l.ConfirmPass(ctx, client)
		if left == 0 || ctx.Err() != nil {
			return left
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Holds is a copy of the holds made so far.
func (l *Load) Holds() []Hold {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Hold, len(l.holds))
	for i, h := range l.holds {
		out[i] = *h
	}
	return out
}

// Report is what a drill measured.
type Report struct {
	Attempts, OK, Unavailable, NoAnswer int
	Other                               map[string]int // "status code" → count
	// First503 and Last503 bound the answers 503 (or none) after the kill;
	// Outage is Last - First (0 when there were none).
	First503, Last503 time.Time
	Outage            time.Duration
	// SecondsWith503 counts the wall-clock seconds that saw a 503 or no answer.
	SecondsWith503 int
	// FirstOKAfter is the first 201 after the kill.
	FirstOKAfter time.Time
}

// Measure sums the answers; kill is the moment the fault was made.
func (l *Load) Measure(kill time.Time) Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := Report{Other: map[string]int{}}
	secs := map[int64]bool{}
	for _, a := range l.answers {
		r.Attempts++
		switch a.Status {
		case 201:
			r.OK++
			if a.At.After(kill) && r.FirstOKAfter.IsZero() {
				r.FirstOKAfter = a.At
			}
		case 503, 0:
			if a.Status == 0 {
				r.NoAnswer++
			} else {
				r.Unavailable++
			}
			secs[a.At.Unix()] = true
			if a.At.Before(kill) {
				break // an earlier round's: counted, but not this window's bound
			}
			if r.First503.IsZero() || a.At.Before(r.First503) {
				r.First503 = a.At
			}
			if a.At.After(r.Last503) {
				r.Last503 = a.At
			}
		default:
			r.Other[fmt.Sprintf("%d %s", a.Status, a.Code)]++
		}
	}
	r.SecondsWith503 = len(secs)
	if !r.First503.IsZero() {
		r.Outage = r.Last503.Sub(r.First503)
	}
	return r
}

// String is the report as the runbook's table rows show it.
func (r Report) String() string {
	var other []string
	for k, v := range r.Other {
		other = append(other, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(other)
	return fmt.Sprintf("attempts %d, 201 %d, 503 %d, no answer %d, other [%s]; 503 window %v (%d distinct seconds)",
		r.Attempts, r.OK, r.Unavailable, r.NoAnswer, strings.Join(other, ", "), r.Outage.Round(10*time.Millisecond), r.SecondsWith503)
}

// Replay posts a hold's request again with its key and returns the status,
// the reservation id answered and whether it says it was replayed.
func (c *Cloud) Replay(h Hold) (int, string, bool, error) {
	req, _ := http.NewRequest("POST", c.Base+"/v1/reservations", bytes.NewReader([]byte(h.Body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", h.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	var out holdOut
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.ID, resp.Header.Get("Idempotent-Replayed") == "true", nil
}

// Ready is GET /readyz's body.
func (c *Cloud) Ready() (int, string) {
	resp, err := http.Get(c.Base + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
