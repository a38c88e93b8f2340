package stack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/internal/testkit/tcpproxy"
	"github.com/parkgate/parkgate/protocol"
	"github.com/parkgate/parkgate/sim"
)

// Edge is one lot's edge agent and its uplink, which the simulator can cut:
// one proxy to the broker and one to the cloud's HTTP API (catch-up), as a
// lot's one internet connection carries both.
type Edge struct {
	Lot        sim.Lot
	Proc       *Proc
	URL        string // the agent's HTTP API
	Proxy      *tcpproxy.Proxy
	CloudProxy *tcpproxy.Proxy
	Token      string
	Pins       *Pins // nil when the agent does not expose its fake pins

	dataDir string
	env     []string
	args    []string
	mounted bool  // dataDir is a small tmpfs (Options.SmallDisks)
	diskErr error // why it is not
}

// LotLocation is where lot i stands: lots sit a few hundred metres apart
// around one point, so one search finds them all.
func LotLocation(i int) (lat, lng float64) {
	return 52.5200 + 0.002*float64(i%5), 13.4050 + 0.003*float64(i/5)
}

// lotCurrency is every simulated lot's, in the ISO 4217 spelling the cloud
// keeps.
const lotCurrency = "EUR"

// lotRate is every simulated lot's hourly rate, in cents.
const lotRate = 300

func (s *Stack) lots(ctx context.Context) error {
	exitGrace := s.opts.ExitGrace
	if exitGrace <= 0 {
		exitGrace = cloud.DefaultExitGrace // the edges keep their default too
	}
	for i, spec := range s.opts.Lots {
		lat, lng := LotLocation(i)
		var lot struct {
			ID string `json:"id"`
		}
		_, err := s.do(ctx, http.MethodPost, s.CloudURL+"/v1/lots", s.AdminToken, map[string]any{
			"name": spec.Name, "latitude": lat, "longitude": lng, "time_zone": "Europe/Berlin",
			"spots": spec.Spots, "hourly_rate": map[string]any{"amount": lotRate, "currency": lotCurrency},
			// The cloud prices an overstay past the same grace the edges
			// keep, so a car that leaves late in the simulation owes.
			"free_cancellation": spec.FreeCancellation.String(), "exit_grace": exitGrace.String(),
		}, &lot)
		if err != nil {
			return fmt.Errorf("stack: create lot %s: %w", spec.Name, err)
		}
		var tok struct {
			Token string `json:"token"`
		}
		if _, err := s.do(ctx, http.MethodPost, s.CloudURL+"/v1/lots/"+lot.ID+"/edge-tokens", s.AdminToken, nil, &tok); err != nil {
			return fmt.Errorf("stack: edge token of %s: %w", spec.Name, err)
		}
		gates := spec.Gates
		if gates == "" {
			gates = "entry-1=entry,exit-1=exit"
		}
		sl := sim.Lot{Index: i, ID: lot.ID, Name: spec.Name, Spots: spec.Spots, Currency: lotCurrency,
			HourlyRate: lotRate, FreeCancellation: spec.FreeCancellation, ExitGrace: exitGrace}
		for _, g := range strings.Split(gates, ",") {
			id, dir, _ := strings.Cut(strings.TrimSpace(g), "=")
			if dir == protocol.DirectionEntry {
				sl.Entry = append(sl.Entry, id)
			} else {
				sl.Exit = append(sl.Exit, id)
			}
		}
		e := &Edge{Lot: sl, Token: tok.Token, dataDir: filepath.Join(s.Dir, "edge-"+spec.Name)}
		e.env = []string{"PARKGATE_GATES=" + gates}
		s.Edges = append(s.Edges, e)
		if i < 10 || i == len(s.opts.Lots)-1 {
			s.logf("lot %s: %s, %d spots", spec.Name, lot.ID, spec.Spots)
		} else if i == 10 {
			s.logf("…")
		}
	}
	return nil
}

func (s *Stack) startEdge(ctx context.Context, e *Edge) error {
	if e.Proxy == nil {
		var err error
		if e.Proxy, err = tcpproxy.Listen("127.0.0.1:0", s.Broker.Addr()); err != nil {
			return fmt.Errorf("stack: proxy for %s: %w", e.Lot.Name, err)
		}
		if e.CloudProxy, err = tcpproxy.Listen("127.0.0.1:0", strings.TrimPrefix(s.CloudURL, "http://")); err != nil {
			return fmt.Errorf("stack: proxy for %s: %w", e.Lot.Name, err)
		}
		if err := os.MkdirAll(e.dataDir, 0o755); err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		var env []string // the environment of the try that started
		p, addr, err := s.startServing(ctx, "parkedge-"+e.Lot.Name, s.opts.EdgeBin, e.args,
			func(addr string) []string {
				env = append(slices.Clip(e.env), edgeEnv(s, e, addr)...)
				return env
			},
			"/healthz", 30*time.Second)
		if err != nil {
			return err
		}
		e.URL = "http://" + addr
		e.Lot.EdgeURL = e.URL
		e.env = env
		e.Proc = p
	} else {
		// A restart keeps its address: the cameras know it.
		p, err := startProc("parkedge-"+e.Lot.Name, s.Dir, s.opts.EdgeBin, e.args, e.env)
		if err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		e.Proc = p
		if err := p.waitHTTP(ctx, e.URL+"/healthz", 30*time.Second); err != nil {
			return fmt.Errorf("stack: %w", err)
		}
	}
	e.Pins = probePins(ctx, e.URL)
	pins := "no fake pins over HTTP"
	if e.Pins != nil {
		pins = "fake pins at " + e.Pins.base
	}
	s.logf("parkedge %s: %s via proxy %s (%s)%s", e.Lot.Name, e.URL, e.Proxy.Addr(), pins, s.logNote(e.Proc))
	return nil
}

func edgeEnv(s *Stack, e *Edge, addr string) []string {
	o := s.opts
	env := []string{
		"PARKGATE_LOT_ID=" + e.Lot.ID,
		"PARKGATE_DATA_DIR=" + e.dataDir,
		"MQTT_URL=" + e.Proxy.URL(),
		"PARKGATE_CLOUD_URL=http://" + e.CloudProxy.Addr(),
		"PARKGATE_EDGE_TOKEN=" + e.Token,
		"PARKGATE_CLOUD_PUBLIC_KEYS=" + s.PublicKey,
		"PARKGATE_HARDWARE=sim",
		"PARKGATE_HTTP_ADDR=" + addr,
	}
	if o.EarlyGrace > 0 {
		env = append(env, "PARKGATE_EARLY_GRACE="+o.EarlyGrace.String())
	}
	if o.ExitGrace > 0 {
		env = append(env, "PARKGATE_EXIT_GRACE="+o.ExitGrace.String())
	}
	if o.MinConfidence > 0 {
		env = append(env, "PARKGATE_MIN_CONFIDENCE="+strconv.FormatFloat(o.MinConfidence, 'f', -1, 64))
	}
	if o.Pulse > 0 {
		env = append(env, "PARKGATE_PULSE="+o.Pulse.String())
	}
	return env
}

// Cut takes the lot's uplink down: its broker connection and its way to
// the cloud's API drop, and new ones are refused.
func (e *Edge) Cut() {
	e.Proxy.Cut()
	e.CloudProxy.Cut()
}

// Restore brings the uplink back.
func (e *Edge) Restore() {
	e.Proxy.Restore()
	e.CloudProxy.Restore()
}

// IsCut reports whether the uplink is down.
func (e *Edge) IsCut() bool { return e.Proxy.IsCut() }
