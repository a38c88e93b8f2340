package main

import (
	"context"

	"github.com/parkgate/parkgate/edge/internal/sdnotify"
)

// notifySystemd tells systemd (Type=notify) that the agent serves, and
// starts the watchdog pings when the unit has WatchdogSec=. Outside systemd
// it does nothing.
func (m *Main) notifySystemd(ctx context.Context) {
	if _, err := sdnotify.Ready(); err != nil {
		// systemd would then time the start out and restart us: worth a
		// line, but the agent serves meanwhile.
		m.Logger.Error("systemd not told of the start", "err", err)
	}
	every, err := sdnotify.WatchdogInterval()
	if err != nil {
		m.Logger.Error("systemd watchdog misconfigured: no pings", "err", err)
		return
	}
	if every == 0 {
		return
	}
	check := m.watchdogCheck
	if check == nil {
		check = m.agent.Ping
	}
	wd := &sdnotify.Watchdog{Interval: every, Check: check, Logger: m.Logger}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		wd.Run(ctx)
	}()
	m.Logger.Info("systemd watchdog on", "ping_every", every.String())
}
