package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 document of this API, served as it is
// checked in. It is a file, not built from Go values at start-up: what
// clients read is then the very bytes reviewed in a change, any tool can
// read it from the repository without running parkcloud, and the binary
// carries no OpenAPI library. What keeps it true is openapi_test.go: every
// route the router serves is in it and every path in it is served, it
// validates as OpenAPI 3.1, and real answers of a test server validate
// against its schemas.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI serves the document. It changes only with a release, so caches
// may keep it a while.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDoc)
}
