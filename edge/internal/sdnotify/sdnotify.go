package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready tells systemd that start-up is finished. It reports whether a
// service manager was told: false with a nil error outside a notify unit.
func Ready() (bool, error) { return notify(daemon.SdNotifyReady) }

// Stopping tells systemd that shutdown has begun, so the time it takes is
// not mistaken for a hang.
func Stopping() (bool, error) { return notify(daemon.SdNotifyStopping) }

func notify(state string) (bool, error) {
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		return false, fmt.Errorf("sdnotify %s: %w", state, err)
	}
	return sent, nil
}

// WatchdogInterval returns how often to ping: half of the unit's
// WatchdogSec, as sd_watchdog_enabled(3) advises, so one late ping is not
// yet a restart. It is 0 when the unit has no watchdog or it watches
// another process (WATCHDOG_PID).
func WatchdogInterval() (time.Duration, error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, fmt.Errorf("sdnotify watchdog: %w", err)
	}
	return d / 2, nil
}

// Watchdog pings systemd's watchdog while Check says the service is
// healthy.
type Watchdog struct {
	// Interval is the time between pings; WatchdogInterval gives it.
	Interval time.Duration
	// Check walks the path that must stay responsive and returns its error.
	// It has until the next ping is due: one that errs or has not returned
	// by then withholds the ping. It is never called again while a call
	// is outstanding, so a wedged check costs one goroutine, not one per
	// interval.
	Check func() error
	// Logger takes a line when the pings stop and when they resume; nil
	// discards them.
	Logger *slog.Logger
	// Notify sends one state; nil sends it to NOTIFY_SOCKET. Tests count
	// pings with it.
	Notify func(state string) error
}

// Run pings until ctx ends. The first check starts at once, so the first
// ping follows READY=1 without waiting an interval.
func (w *Watchdog) Run(ctx context.Context) {
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	send := w.Notify
	if send == nil {
		send = func(state string) error { _, err := notify(state); return err }
	}
	var pending chan error
	healthy := true
	setHealthy := func(ok bool, err error) {
		if ok == healthy {
			return
		}
		healthy = ok
		if ok {
			log.Info("decision path answers again: watchdog pings resume")
		} else {
			log.Error("decision path unhealthy: watchdog pings withheld, systemd restarts the agent if this lasts", "err", err)
		}
	}
	timer := time.NewTimer(w.Interval)
	defer timer.Stop()
	for {
		if pending == nil {
			pending = make(chan error, 1)
			go func(done chan<- error) { done <- w.Check() }(pending)
		}
		timer.Reset(w.Interval)
		select {
		case <-ctx.Done():
			return
		case err := <-pending:
			pending = nil
			if err != nil {
				setHealthy(false, err)
			} else {
				setHealthy(true, nil)
				if err := send(daemon.SdNotifyWatchdog); err != nil {
					log.Warn("watchdog ping not sent", "err", err)
				}
			}
			// Pace the checks: the next one starts when this ping's
			// interval is over.
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		case <-timer.C:
			// Still outstanding: no ping, and no second check on top.
			setHealthy(false, fmt.Errorf("no answer within %v", w.Interval))
		}
	}
}
