// Package busmetrics holds the Prometheus metrics every bus backend reports,
// on the default registry, labelled by backend, so that one dashboard works
// whichever backend a deployment chose and the two packages cannot register
// clashing names.
package busmetrics
