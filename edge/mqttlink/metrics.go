package mqttlink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

func (l *Link) register(reg prometheus.Registerer) error {
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	cs := []prometheus.Collector{
		gauge("parkedge_mqtt_connected", "1 while the broker connection is up.", func() float64 {
			if l.Connected() {
				return 1
			}
			return 0
		}),
		counter("parkedge_mqtt_connections_total", "Successful broker connections.", l.connections.Load),
		gauge("parkedge_sync_applied_seq", "Sequence number of the last applied reservation change.", func() float64 { return float64(l.applied.Load()) }),
		counter("parkedge_sync_changes_applied_total", "Reservation changes applied.", l.appliedN.Load),
		counter("parkedge_sync_duplicates_total", "Reservation changes ignored as already applied or buffered.", l.duplicates.Load),
		counter("parkedge_sync_bad_signatures_total", "Reservation changes refused because no cloud key verified them.", l.badSigs.Load),
		counter("parkedge_sync_invalid_total", "Messages refused as not a valid change for this lot.", l.invalid.Load),
		counter("parkedge_sync_skipped_total", "Signed changes of a kind or op this agent does not know, applied as no-ops.", l.skipped.Load),
		counter("parkedge_sync_catchups_total", "Completed HTTP catch-ups.", l.catchUps.Load),
		counter("parkedge_sync_catchup_errors_total", "Failed HTTP catch-up attempts.", l.catchUpErrs.Load),
		gauge("parkedge_signing_key_registered", "1 once the cloud has accepted the key that signs the gate events; until then they wait in the outbox.", func() float64 {
			if l.keyRegistered.Load() {
				return 1
			}
			return 0
		}),
		counter("parkedge_signing_key_register_errors_total", "Failed attempts to register the signing key with the cloud.", l.registerErrs.Load),
		counter("parkedge_events_published_total", "Gate events acknowledged by the broker and removed from the outbox.", l.published.Load),
		gauge("parkedge_outbox_depth", "Gate events waiting for the broker.", func() float64 { return float64(l.store.Depth()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("mqttlink: register metrics: %w", err)
		}
	}
	return nil
}
