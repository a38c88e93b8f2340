// Package httpapi is the agent's local HTTP API, on the gate computer, for
// cameras and operators: POST /v1/plate-reads (a camera pushes a read and
// is told open or deny), GET /v1/gates, POST /v1/presence/{plate}/reset
// (an operator returns a plate to neutral), GET /healthz and GET /metrics.
// Domain error codes become HTTP statuses in one place, errorStatus. It
// also implements edge.Observer with Prometheus metrics of every decision.
package httpapi
