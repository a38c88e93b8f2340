package booking

import "github.com/parkgate/parkgate/cloud"

// transitionExtended is the parkgate_reservation_transitions_total label of
// an extension confirmed: not a status, the reservation stays CONFIRMED.
const transitionExtended = "EXTENDED"

func init() {
	// Every labelled series exists from the start, at zero: a vector
	// appears on /metrics only once a label value is used, and the
	// dashboard's rate() needs a baseline before the first refund or
	// conflict to show none rather than no data
	// (TestScenarios/Dashboard holds the dashboard against a run's scrape).
	for _, c := range []string{cloud.ENoAvailability, cloud.ELotClosed, cloud.EInvalid, cloud.EPaymentProvider, cloud.EUnavailable} {
		holdConflicts.WithLabelValues(c)
	}
	for _, to := range []cloud.Status{cloud.StatusConfirmed, cloud.StatusExpired, cloud.StatusCancelled, cloud.StatusRefunded} {
		transitions.WithLabelValues(string(to))
	}
	transitions.WithLabelValues(transitionExtended)
	for _, w := range []cloud.ProviderWork{cloud.WorkCloseSession, cloud.WorkRefund, cloud.WorkOverstaySession} {
		providerDeferred.WithLabelValues(string(w))
	}
	for _, o := range []string{webhookInvalidSignature, webhookUnreadable, webhookError, webhookDuplicate, webhookRecorded} {
		webhookEvents.WithLabelValues(o)
	}
	for _, r := range []string{refundLate, refundUnknown, refundCancelled, refundOperator} {
		refunds.WithLabelValues(r)
	}
	for _, o := range []string{operatorSucceeded, operatorRefused, operatorDeferred} {
		operatorRefunds.WithLabelValues(o)
	}
}
