// Package sdnotify tells systemd how parkedge is doing, for a unit with
// Type=notify and WatchdogSec= (deploy/systemd/parkedge.service): READY=1
// once the agent serves, STOPPING=1 when it shuts down, and WATCHDOG=1 at
// half the watchdog interval, but only while a health check of the
// decision path answers in time. A wedged agent (a lock never released, a
// store that no longer answers) stops the pings, and systemd restarts it; a
// merely offline one keeps pinging, as it still decides at the gate.
//
// Outside systemd (NOTIFY_SOCKET unset) every call does nothing. The
// datagrams are sent by github.com/coreos/go-systemd/v22/daemon.
package sdnotify
