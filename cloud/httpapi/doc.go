// Package httpapi is the cloud's HTTP interface: the driver API (search,
// availability, holds, reservations), the operator API (lots, edge tokens),
// the Stripe webhook, the edges' catch-up endpoint and the health and
// metrics endpoints. It decodes strictly, answers every error in the
// contract's envelope, and maps error codes to statuses in one function
// (StatusOf). The services it calls are ports declared here. openapi.json
// describes all of it as OpenAPI 3.1, served at /openapi.json and held to
// the router and the real answers by openapi_test.go.
package httpapi
