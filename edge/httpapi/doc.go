// Package httpapi is the agent's local HTTP API, on the gate computer, for
// cameras and operators: POST /v1/plate-reads (a camera pushes a read and
// is told open or deny), POST /v1/gates/{gate_id}/open (an operator opens a
// barrier remotely, with a reason that is recorded), POST
// /v1/presence/{plate}/reset (an operator returns a plate to neutral),
// GET /v1/gates, GET /healthz and GET /metrics. Camera calls need the
// camera token when one is set; operator calls need the operator token and
// are off without one. NewServer puts the server's timeouts and header
// bound around it, and decode refuses oversize, unknown and trailing input,
// because the lot's network is not trusted. Domain error codes become HTTP
// statuses in one place, errorStatus. It also implements edge.Observer with
// Prometheus metrics of every decision.
package httpapi
