package check

import "github.com/parkgate/parkgate/sim"

// ChangesReachedEdges: every reservation change the cloud logged for a lot
// reached its edge — the edge's applied sequence number is the lot's last.
// A change the cloud committed to its outbox and then lost (a kill -9
// before publishing it, a broker that forgot it) would leave the edge
// behind: it would refuse a driver who paid, or open for one who cancelled.
func ChangesReachedEdges(run *sim.Run) Result {
	r := Result{Name: "changes_reached_edges", Title: "every reservation change reached its lot's edge",
		Source: "postgres: the lots' change-log sequence; edges: applied sequence"}
	for _, e := range run.Edges {
		r.Checked++
		switch {
		case e.LotSeq == 0:
			// The lot never changed: nothing to reach the edge.
		case e.SyncSeq < e.LotSeq:
			r.fail("edge of %s applied changes up to %d; the cloud's last is %d", lotName(run, e.LotID), e.SyncSeq, e.LotSeq)
		case e.SyncSeq > e.LotSeq:
			r.fail("edge of %s applied %d; the cloud knows only up to %d", lotName(run, e.LotID), e.SyncSeq, e.LotSeq)
		}
	}
	return r.done()
}
