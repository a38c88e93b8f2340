package httpapi

import (
	_ "embed"
	"html/template"
	"net/http"
)

// The operator console (GET /console). The page is public HTML with no data
// in it: the operator types the admin token, which the page's one script
// keeps in the tab's sessionStorage and sends to the JSON API as a bearer
// token, as the reservation page does with a driver's token. Every value
// the API answers is put into the page as text (textContent, never as
// markup), so nothing an API field holds — a plate, a webhook URL — can
// become script.
//
// Remote open goes down the lot's change stream (POST
// /v1/lots/{id}/gates/{gate_id}/open): the gate's computer opens once if it
// hears of it within booking.RemoteOpenValidity.

// consoleHTML is the console's page (markup, style and script), a file of
// its own rather than a Go string of 500 lines.
//
//go:embed console.html
var consoleHTML string

// consoleTmpl is consoleHTML parsed. No template actions: the script and
// the style are hashed from this text for the CSP, and neither may hold a
// comment (html/template drops comments when it renders, and the hash would
// no longer be that of the bytes served).
var consoleTmpl = template.Must(template.New("console").Parse(consoleHTML))

// consolePageCSP is the console's Content-Security-Policy: as the
// reservation page's, its one script and one style block by their hashes,
// and fetches only to this origin (the API). No images, no frames.
var consolePageCSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"connect-src 'self'; " +
	"script-src " + inlineHash(consoleTmpl, "<script>", "</script>") + "; " +
	"style-src " + inlineHash(consoleTmpl, "<style>", "</style>")

// consolePage is GET /console: the same page for everyone; what it shows
// comes from the API with the token the operator gives it.
func (s *Server) consolePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", consolePageCSP)
	w.WriteHeader(http.StatusOK)
	if err := consoleTmpl.Execute(w, nil); err != nil {
		s.Log.Warn("render console", "err", err)
	}
}
