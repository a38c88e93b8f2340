// Package grafana is the operators' dashboard, parkgate.json, and what it
// queries: Metrics reads the metric names out of its queries so that tests
// can hold them against what parkcloud and parkedge register (this
// package's test, reading their source) and against what a running system
// exports (sim/scenario's demo run, scraping /metrics at its end). A
// renamed metric then fails `make test` rather than leaving an empty panel
// in production.
package grafana
