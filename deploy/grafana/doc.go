// Package grafana holds no code: it is where the test lives that checks the
// dashboard parkgate.json names only metrics that parkcloud and parkedge
// export, so a renamed metric fails `make test` rather than leaving an empty
// panel in production.
package grafana
