package report

import (
	"math"
	"time"

	"github.com/parkgate/parkgate/sim"
)

// series computes the charts' data: occupancy per lot, decisions per minute
// and the faults as spans on the same time axis.
func (s *Summary) series(run *sim.Run) {
	t0 := run.Started
	end := run.Ended
	if end.IsZero() || end.Before(t0) {
		end = t0
	}
	sec := func(t time.Time) float64 { return t.Sub(t0).Seconds() }
	s.Series.RunSeconds = sec(end)
	names := map[string]string{}
	s.Series.Capacity = map[string]int{}
	s.Series.Occupancy = map[string][]Point{}
	for _, l := range run.Lots {
		names[l.ID] = l.Name
		s.Series.Capacity[l.Name] = l.Spots
		s.Series.Occupancy[l.Name] = []Point{{0, 0}}
	}
	for _, o := range run.Occupancy {
		n := names[o.LotID]
		s.Series.Occupancy[n] = append(s.Series.Occupancy[n], Point{sec(o.At), float64(o.Inside)})
	}
	// Events per minute, in buckets small enough to show a one-minute run.
	bucket := max(5.0, math.Ceil(s.Series.RunSeconds/30))
	nb := int(math.Ceil(s.Series.RunSeconds/bucket)) + 1
	open, deny := make([]float64, nb), make([]float64, nb)
	for _, rd := range run.Reads {
		if rd.Decision == "" {
			continue
		}
		i := int(sec(rd.SentAt) / bucket)
		if i < 0 || i >= nb {
			continue
		}
		if rd.Open() {
			open[i]++
		} else {
			deny[i]++
		}
	}
	perMin := 60 / bucket
	for i := range nb {
		s.Series.EventsOpen = append(s.Series.EventsOpen, Point{float64(i) * bucket, open[i] * perMin})
		s.Series.EventsDeny = append(s.Series.EventsDeny, Point{float64(i) * bucket, deny[i] * perMin})
	}
	s.Series.EventsBucket = bucket
	for _, f := range run.Faults {
		to := f.Until
		if to.IsZero() {
			to = f.At
		}
		label := f.Kind
		if f.Target != "" {
			label += " " + f.Target
		}
		s.Series.Faults = append(s.Series.Faults, FaultSpan{From: sec(f.At), To: sec(to), Label: label, Kind: f.Kind, Target: f.Target})
	}
}
