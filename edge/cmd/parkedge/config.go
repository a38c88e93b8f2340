package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/protocol"
)

// Config is the agent's configuration after parsing.
type Config struct {
	LotID         string
	Gates         []edge.Gate
	DataDir       string
	Brokers       []string
	ClientID      string
	CloudURL      string
	EdgeToken     string
	CatchUpEvery  time.Duration // HTTP catch-up period while the broker is unreachable
	PublicKeys    []ed25519.PublicKey
	Hardware      string // "periph" or "sim"
	HTTPAddr      string
	Pins          map[string]hw.GatePins
	ActiveLowOver bool
	Policy        edge.Policy
	OperatorToken string
	CameraToken   string
	LogLevel      slog.Level
}

// Hardware backends.
const (
	HardwarePeriph = "periph"
	HardwareSim    = "sim"
)

// ParseFlags reads flags, each falling back to its environment variable
// and then to a default that serves the local machine.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("parkedge", flag.ContinueOnError)
	// The flag package would print the whole list after every mistake;
	// main prints the mistake once with a pointer to -help, and -help gets
	// the page on stdout.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	def := edge.DefaultPolicy()
	var (
		lot       = str(fs, "lot-id", "PARKGATE_LOT_ID", "", "lot this agent serves (required)")
		gates     = str(fs, "gates", "PARKGATE_GATES", "entry-1=entry,exit-1=exit", "gates and their directions: id=entry|exit,...")
		dataDir   = str(fs, "data-dir", "PARKGATE_DATA_DIR", "./parkedge-data", "directory of the bbolt store")
		mqttURL   = str(fs, "mqtt-url", "MQTT_URL", "tcp://127.0.0.1:1883", "broker URLs, comma-separated, tried in order for failover")
		clientID  = str(fs, "mqtt-client-id", "PARKGATE_MQTT_CLIENT_ID", "", "fixed MQTT client id (default parkedge-{lot id})")
		cloudURL  = str(fs, "cloud-url", "PARKGATE_CLOUD_URL", "http://127.0.0.1:8080", "cloud API base URL for catch-up and key registration; empty turns both off")
		catchUp   = str(fs, "catchup-interval", "PARKGATE_CATCHUP_INTERVAL", "10s", "while the broker is unreachable, catch up over HTTP this often")
		token     = secret(fs, "edge-token", "PARKGATE_EDGE_TOKEN", "lot credential: bearer token of catch-up and key registration, and broker password")
		keys      = str(fs, "cloud-public-keys", "PARKGATE_CLOUD_PUBLIC_KEYS", "", "cloud ed25519 public keys, comma-separated standard base64 (required)")
		hardware  = str(fs, "hardware", "PARKGATE_HARDWARE", HardwareSim, "pins: periph (real GPIO by name) or sim (fake pins)")
		httpAddr  = str(fs, "http-addr", "PARKGATE_HTTP_ADDR", "127.0.0.1:8081", "address of the edge API for cameras and operators")
		pins      = str(fs, "pins", "PARKGATE_PINS", "", "pin names: gate.barrier|loop|camera|override=NAME,... (barrier required with periph)")
		activeLow = str(fs, "override-active-low", "PARKGATE_OVERRIDE_ACTIVE_LOW", "true", "override button pulls its input low when pressed")
		early     = str(fs, "early-grace", "PARKGATE_EARLY_GRACE", def.EarlyGrace.String(), "entry opens this long before starts_at")
		exitGrace = str(fs, "exit-grace", "PARKGATE_EXIT_GRACE", def.ExitGrace.String(), "leaving within this long after ends_at is no overstay")
		minConf   = str(fs, "min-confidence", "PARKGATE_MIN_CONFIDENCE", strconv.FormatFloat(def.MinConfidence, 'g', -1, 64), "camera confidence (0..1) below which an entry is refused")
		pulse     = str(fs, "pulse", "PARKGATE_PULSE", def.Pulse.String(), "barrier relay pulse length")
		maxAge    = str(fs, "max-read-age", "PARKGATE_MAX_READ_AGE", def.MaxReadAge.String(), "a read whose captured_at is older than this is denied (stale_read)")
		camToken  = secret(fs, "camera-token", "PARKGATE_CAMERA_TOKEN", "when set, cameras must send it with every read, as a bearer token or as the HTTP Basic password")
		opToken   = secret(fs, "operator-token", "PARKGATE_OPERATOR_TOKEN", "bearer token of operator calls (presence reset, remote open); unset turns them off (403)")
		logLevel  = str(fs, "log-level", "PARKGATE_LOG_LEVEL", "info", "debug, info, warn or error")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			m.usage(fs)
			return err
		}
		return fmt.Errorf("%w (parkedge -help lists every flag)", err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["edge-token"] {
		*token = os.Getenv("PARKGATE_EDGE_TOKEN")
	}
	if !set["operator-token"] {
		*opToken = os.Getenv("PARKGATE_OPERATOR_TOKEN")
	}
	if !set["camera-token"] {
		*camToken = os.Getenv("PARKGATE_CAMERA_TOKEN")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	c := Config{LotID: *lot, DataDir: *dataDir, ClientID: *clientID, CloudURL: strings.TrimRight(*cloudURL, "/"),
		EdgeToken: *token, Hardware: *hardware, HTTPAddr: *httpAddr, OperatorToken: *opToken, CameraToken: *camToken}
	var err error
	if c.LotID == "" || strings.ContainsAny(c.LotID, "/+# ") {
		return fmt.Errorf("-lot-id (PARKGATE_LOT_ID) is required and may not contain '/', '+', '#' or spaces")
	}
	if c.Gates, err = edge.ParseGates(*gates); err != nil {
		return fmt.Errorf("-gates: %w", err)
	}
	for _, b := range strings.Split(*mqttURL, ",") {
		if b = strings.TrimSpace(b); b != "" {
			if _, err := url.Parse(b); err != nil {
				return fmt.Errorf("-mqtt-url: %w", err)
			}
			c.Brokers = append(c.Brokers, b)
		}
	}
	if len(c.Brokers) == 0 {
		return fmt.Errorf("-mqtt-url: no broker")
	}
	if c.PublicKeys, err = protocol.ParsePublicKeys(*keys); err != nil {
		return fmt.Errorf("-cloud-public-keys: %w", err)
	}
	if c.Hardware != HardwarePeriph && c.Hardware != HardwareSim {
		return fmt.Errorf("-hardware: %q is neither periph nor sim", c.Hardware)
	}
	if c.Pins, err = hw.ParsePins(*pins); err != nil {
		return fmt.Errorf("-pins: %w", err)
	}
	for gate := range c.Pins {
		if !hasGate(c.Gates, gate) {
			return fmt.Errorf("-pins: no gate %q", gate)
		}
	}
	if c.Hardware == HardwarePeriph {
		for _, g := range c.Gates {
			if c.Pins[g.ID].Barrier == "" {
				return fmt.Errorf("-pins: gate %q has no barrier pin", g.ID)
			}
		}
	}
	if c.ActiveLowOver, err = strconv.ParseBool(*activeLow); err != nil {
		return fmt.Errorf("-override-active-low: %w", err)
	}
	if c.CatchUpEvery, err = time.ParseDuration(*catchUp); err != nil {
		return fmt.Errorf("-catchup-interval: %w", err)
	}
	if c.CatchUpEvery <= 0 {
		return fmt.Errorf("-catchup-interval: must be positive")
	}
	if c.Policy.EarlyGrace, err = time.ParseDuration(*early); err != nil {
		return fmt.Errorf("-early-grace: %w", err)
	}
	if c.Policy.ExitGrace, err = time.ParseDuration(*exitGrace); err != nil {
		return fmt.Errorf("-exit-grace: %w", err)
	}
	if c.Policy.MinConfidence, err = strconv.ParseFloat(*minConf, 64); err != nil {
		return fmt.Errorf("-min-confidence: %w", err)
	}
	if c.Policy.Pulse, err = time.ParseDuration(*pulse); err != nil {
		return fmt.Errorf("-pulse: %w", err)
	}
	if c.Policy.MaxReadAge, err = time.ParseDuration(*maxAge); err != nil {
		return fmt.Errorf("-max-read-age: %w", err)
	}
	if c.Policy.MaxReadAge <= 0 {
		return fmt.Errorf("-max-read-age: must be positive")
	}
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	if err := c.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	m.Config = c
	m.Logger = slog.New(slog.NewJSONHandler(m.Stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	return nil
}

// usage is the -help page. It goes to stdout (Stdout, when set), so
// `parkedge -help | less` works; the exit status is 0.
func (m *Main) usage(fs *flag.FlagSet) {
	w := m.Stdout
	if w == nil {
		w = os.Stdout
	}
	fmt.Fprint(w, `parkedge: the gate agent of one parking lot. It decides on each camera read
from its own store in microseconds, online or offline, pulses the barrier,
and keeps its store in step with the cloud over MQTT (HTTP catch-up).

Usage: parkedge [flags]

Every flag falls back to the environment variable named in its line (the
systemd unit reads them from /etc/parkgate/parkedge.env); a flag given on
the command line wins. Secrets are best left to the environment.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, `
Edge API on -http-addr: POST /v1/plate-reads and POST /v1/access-codes
(camera), GET /v1/gates, POST /v1/gates/{gate_id}/open and POST /v1/presence/{plate}/reset
(operator), GET /healthz, GET /metrics.
`)
}

// str defines a string flag whose default comes from env when it is set,
// and says so in -help.
func str(fs *flag.FlagSet, name, env, def, usage string) *string {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	return fs.String(name, def, usage+" (env "+env+")")
}

// secret defines a string flag whose environment fallback is read after
// parsing, so -help never prints the secret as a default.
func secret(fs *flag.FlagSet, name, env, usage string) *string {
	return fs.String(name, "", usage+"; secret, prefer the environment (env "+env+")")
}

func hasGate(gates []edge.Gate, id string) bool {
	for _, g := range gates {
		if g.ID == id {
			return true
		}
	}
	return false
}

// logAttrs is the configuration as the startup log shows it: secrets
// masked, broker passwords redacted.
func (c Config) logAttrs() []any {
	brokers := make([]string, len(c.Brokers))
	for i, b := range c.Brokers {
		if u, err := url.Parse(b); err == nil {
			brokers[i] = u.Redacted()
		}
	}
	keys := make([]string, len(c.PublicKeys))
	for i, k := range c.PublicKeys {
		keys[i] = protocol.EncodePublicKey(k)
	}
	gates := make([]string, len(c.Gates))
	for i, g := range c.Gates {
		gates[i] = g.ID + "=" + g.Direction
	}
	return []any{
		"lot_id", c.LotID, "gates", strings.Join(gates, ","), "data_dir", c.DataDir,
		"mqtt_url", strings.Join(brokers, ","), "cloud_url", c.CloudURL, "catchup_interval", c.CatchUpEvery.String(), "edge_token", mask(c.EdgeToken),
		"cloud_public_keys", strings.Join(keys, ","), "hardware", c.Hardware, "http_addr", c.HTTPAddr,
		"early_grace", c.Policy.EarlyGrace.String(), "exit_grace", c.Policy.ExitGrace.String(),
		"min_confidence", c.Policy.MinConfidence, "pulse", c.Policy.Pulse.String(), "max_read_age", c.Policy.MaxReadAge.String(),
		"operator_token", mask(c.OperatorToken), "camera_token", mask(c.CameraToken),
	}
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "****"
}
