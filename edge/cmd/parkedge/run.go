package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"periph.io/x/conn/v3/gpio"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/edge/httpapi"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/edge/hw/hwtest"
	"github.com/parkgate/parkgate/edge/internal/sdnotify"
	"github.com/parkgate/parkgate/edge/mqttlink"
	"github.com/parkgate/parkgate/protocol"
)

// Main is the program: ParseFlags, then Run, then Close.
type Main struct {
	Config Config
	Logger *slog.Logger
	Stderr io.Writer
	// Stdout takes the -help page; nil means os.Stdout.
	Stdout io.Writer
	// Limits are the edge API's timeouts and header bound; zero fields take
	// httpapi.DefaultLimits (tests set short ones).
	Limits httpapi.Limits

	// FakePins holds the pins by "gate.role" when Hardware is sim, for
	// tests and for the simulator endpoints under /v1/sim.
	FakePins map[string]*hwtest.Pin

	// watchdogCheck replaces the agent's Ping as the systemd watchdog's
	// health check, so a test can wedge it; nil means the agent's.
	watchdogCheck func() error

	store    *bolt.Store
	link     *mqttlink.Link
	agent    *edge.Agent
	barriers []*hw.Barrier
	server   *http.Server
	listener net.Listener
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// NewMain returns a Main writing its log to stderr.
func NewMain() *Main {
	return &Main{Stderr: os.Stderr, Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
}

// Run builds everything and starts serving; it returns once the agent is
// up (it may still be connecting to the broker).
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	m.Logger.Info("starting parkedge", c.logAttrs()...)
	ctx, m.cancel = context.WithCancel(ctx)

	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	store, err := bolt.Open(filepath.Join(c.DataDir, "parkedge.db"), &bolt.Options{Logger: m.Logger})
	if err != nil {
		return err
	}
	m.store = store

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := httpapi.NewMetrics(reg)
	if err != nil {
		return err
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parkedge_store_writable",
			Help: "1 when the last store commit succeeded; 0 while the disk refuses writes and events are held in memory."},
			func() float64 { return b2f(store.Writable()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parkedge_store_held_events",
			Help: "Gate events decided while the disk refused writes, held in memory until it takes them."},
			func() float64 { return float64(store.Held()) }))

	gates, watchers, err := m.hardware()
	if err != nil {
		return err
	}
	m.agent, err = edge.NewAgent(edge.Config{
		LotID: c.LotID, Gates: gates, Store: store, Policy: c.Policy, Observer: metrics, Logger: m.Logger,
		CloudKeys: c.PublicKeys,
	})
	if err != nil {
		return err
	}

	gateIDs := make([]string, len(c.Gates))
	for i, g := range c.Gates {
		gateIDs[i] = g.ID
	}
	m.link, err = mqttlink.New(mqttlink.Config{
		Brokers: c.Brokers, LotID: c.LotID, ClientID: c.ClientID, Password: c.EdgeToken, Gates: gateIDs,
		Keys: c.PublicKeys, CloudURL: c.CloudURL, Token: c.EdgeToken, Logger: m.Logger, Registerer: reg,
		PublicKey: store.PublicKey(), CatchUpInterval: c.CatchUpEvery,
		OnCommand: func(cmd protocol.ReservationChange) {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				if _, err := m.agent.Command(ctx, cmd); err != nil {
					m.Logger.Error("remote open", "seq", cmd.Seq, "err", err)
				}
			}()
		},
	}, store)
	if err != nil {
		return err
	}
	m.Logger.Info("gate events are signed", "public_key", protocol.EncodePublicKey(store.PublicKey()))
	if c.CloudURL == "" {
		m.Logger.Warn("no cloud URL: the signing key cannot be registered, and the cloud drops gate events it cannot verify")
	}
	m.agent.SetLink(m.link)
	if err := m.link.Start(ctx); err != nil {
		return err
	}

	for _, w := range watchers {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := w(ctx); err != nil {
				m.Logger.Error("input watcher stopped", "err", err)
			}
		}()
	}

	hc := httpapi.Config{LotID: c.LotID, Agent: m.agent, Gatherer: reg, CameraToken: c.CameraToken,
		OperatorToken: c.OperatorToken, Logger: m.Logger, Health: storeHealth(store)}
	if m.FakePins != nil {
		hc.Mounts = map[string]http.Handler{"/v1/sim": hwtest.PinsHandler("/v1/sim", m.FakePins)}
	}
	m.listener, err = net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.HTTPAddr, err)
	}
	m.server = httpapi.NewServer(httpapi.NewHandler(hc), m.Limits)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.server.Serve(m.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("http server", "err", err)
		}
	}()
	m.Logger.Info("parkedge ready", "http_addr", m.listener.Addr().String())
	m.notifySystemd(ctx)
	if c.OperatorToken == "" {
		m.Logger.Warn("no operator token: remote open and presence reset answer 403 (set PARKGATE_OPERATOR_TOKEN)")
	}
	return nil
}

// HTTPAddr is the address the API listens on once Run returned.
func (m *Main) HTTPAddr() string {
	if m.listener == nil {
		return ""
	}
	return m.listener.Addr().String()
}

// Close stops taking reads, lets the link mark the gates offline, drops
// every relay and closes the store (finishing queued commits).
func (m *Main) Close() error {
	var errs []error
	if _, err := sdnotify.Stopping(); err != nil {
		m.Logger.Warn("systemd not told of the stop", "err", err)
	}
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.link != nil {
		if err := m.link.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, b := range m.barriers {
		if err := b.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hardware opens every gate's pins and returns the gates with their
// barriers and the input watchers to run.
func (m *Main) hardware() ([]edge.GateConfig, []func(context.Context) error, error) {
	c := m.Config
	open := func(gate, role, name string) (gpio.PinIO, error) {
		if c.Hardware == HardwareSim {
			p := hwtest.NewPin(gate + "." + role)
			if m.FakePins == nil {
				m.FakePins = map[string]*hwtest.Pin{}
			}
			m.FakePins[p.Name()] = p
			return p, nil
		}
		if name == "" {
			return nil, nil
		}
		p, err := hw.OpenPin(name)
		if err != nil {
			return nil, fmt.Errorf("gate %s %s pin: %w", gate, role, err)
		}
		return p, nil
	}
	var gates []edge.GateConfig
	var watchers []func(context.Context) error
	for _, g := range c.Gates {
		names := c.Pins[g.ID]
		barrierPin, err := open(g.ID, hw.RoleBarrier, names.Barrier)
		if err != nil {
			return nil, nil, err
		}
		barrier, err := hw.NewBarrier(barrierPin, c.Policy.Pulse)
		if err != nil {
			return nil, nil, err
		}
		m.barriers = append(m.barriers, barrier)
		gates = append(gates, edge.GateConfig{Gate: g, Barrier: barrier})

		loopPin, err := open(g.ID, hw.RoleLoop, names.Loop)
		if err != nil {
			return nil, nil, err
		}
		cameraPin, err := open(g.ID, hw.RoleCamera, names.Camera)
		if err != nil {
			return nil, nil, err
		}
		if loopPin != nil {
			loop := &hw.Loop{Pin: loopPin, OnArrival: func() { m.Logger.Debug("vehicle on loop", "gate", g.ID) }}
			if cameraPin != nil {
				loop.Camera = cameraPin
			}
			watchers = append(watchers, loop.Run)
		}
		overridePin, err := open(g.ID, hw.RoleOverride, names.Override)
		if err != nil {
			return nil, nil, err
		}
		if overridePin != nil {
			gateID := g.ID
			button := &hw.Button{Pin: overridePin, ActiveLow: c.ActiveLowOver && c.Hardware == HardwarePeriph, OnPress: func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if _, err := m.agent.Override(ctx, gateID); err != nil {
					m.Logger.Error("override not recorded", "gate", gateID, "err", err)
				}
			}}
			watchers = append(watchers, button.Run)
		}
	}
	return gates, watchers, nil
}

// storeHealth is the store's part of /healthz. A full disk leaves it 200 —
// the gates decide, and a restart by a health probe would lose the events
// held in memory — but says "degraded" and store_writable false.
func storeHealth(s *bolt.Store) func() map[string]any {
	return func() map[string]any {
		w := s.Writable()
		h := map[string]any{"store_writable": w, "store_held_events": s.Held()}
		if !w {
			h["status"] = "degraded"
		}
		return h
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
