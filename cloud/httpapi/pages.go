package httpapi

import (
	"html/template"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/parkgate/parkgate/cloud"
)

// The pages a driver's browser lands on when Checkout sends it back: small
// and honest until the full driver pages exist. Everything shown goes
// through html/template, which escapes it.

// pageRefresh is how often a page still waiting for its payment reloads.
const pageRefresh = 5

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>{{.Title}} · parkgate</title></head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Text}}</p>
{{with .R}}<dl>
<dt>Reservation</dt><dd>{{.ID}}</dd>
<dt>Status</dt><dd>{{.Status}}</dd>
<dt>Plate</dt><dd>{{.Plate}}</dd>
<dt>From</dt><dd>{{.StartsAt.Format "2006-01-02 15:04 MST"}}</dd>
<dt>Until</dt><dd>{{.EndsAt.Format "2006-01-02 15:04 MST"}}</dd>
</dl>{{end}}
{{if .Link}}<p><a href="{{.Link}}">Check again</a></p>{{end}}
</body></html>
`))

type page struct {
	Title, Text string
	R           *cloud.Reservation
	Refresh     int
	Link        string
}

func (s *Server) writePage(w http.ResponseWriter, status int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // the status changes; show the current one
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, p); err != nil {
		s.Log.Warn("render page", "err", err)
	}
}

// pages registers the driver's landing pages on r.
func (s *Server) pages(r chi.Router) {
	r = r.With(s.limitClients) // a page reads the database as the API's GET does
	r.Get("/reservations/{id}", s.reservationPage)
	r.Get("/paid", s.returnPage)
	r.Get("/cancelled", s.returnPage)
}

// reservationPage shows a reservation's current status.
func (s *Server) reservationPage(w http.ResponseWriter, r *http.Request) {
	u, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		s.writePage(w, http.StatusNotFound, page{Title: "Reservation not found", Text: "There is no reservation at this address."})
		return
	}
	res, err := s.Booking.Reservation(r.Context(), u.String())
	if err != nil {
		status := StatusOf(err)
		p := page{Title: "Reservation not found", Text: "There is no reservation at this address."}
		if status != http.StatusNotFound {
			p = page{Title: "Please try again", Text: "We cannot look up your reservation right now.",
				Refresh: pageRefresh, Link: "/reservations/" + u.String()}
		}
		s.writePage(w, status, p)
		return
	}
	res.StartsAt, res.EndsAt = res.StartsAt.UTC(), res.EndsAt.UTC()
	p := page{R: &res, Link: "/reservations/" + res.ID}
	switch res.Status {
	case cloud.StatusPending:
		p.Title, p.Text, p.Refresh = "Your payment is being confirmed",
			"If you paid, this page updates once the payment is confirmed; it usually takes a few seconds. If you cancelled, the hold ends at "+
				res.HoldExpiresAt.UTC().Format(time.Kitchen+" MST")+".", pageRefresh
	case cloud.StatusConfirmed:
		p.Title, p.Text = "Your booking is confirmed", "The gate opens for your plate from the start of your booking."
	case cloud.StatusCheckedIn:
		p.Title, p.Text = "You are parked", "The gate lets you out when you leave."
	case cloud.StatusCompleted:
		p.Title, p.Text = "Your parking is over", "Thank you."
	case cloud.StatusExpired:
		p.Title, p.Text = "Your hold has expired", "It was not paid in time; the spot is free again. You were not charged."
	case cloud.StatusCancelled:
		p.Title, p.Text = "Your reservation is cancelled", "The spot is free again."
	case cloud.StatusRefunded:
		p.Title, p.Text = "Your payment is being refunded", "It arrived after the hold had expired, so it is returned in full."
	default:
		p.Title, p.Text = "Your reservation", "Its status is shown below."
	}
	s.writePage(w, http.StatusOK, p)
}

// returnPage answers the return URLs of earlier releases (/paid, /cancelled):
// to the reservation's page when the URL names it, else a short page.
func (s *Server) returnPage(w http.ResponseWriter, r *http.Request) {
	if u, err := uuid.Parse(r.URL.Query().Get("reservation_id")); err == nil {
		http.Redirect(w, r, "/reservations/"+u.String(), http.StatusSeeOther)
		return
	}
	if r.URL.Path == "/cancelled" {
		s.writePage(w, http.StatusOK, page{Title: "Payment cancelled",
			Text: "You were not charged. Your hold ends by itself; book again whenever you like."})
		return
	}
	s.writePage(w, http.StatusOK, page{Title: "Thank you",
		Text: "Your payment is being confirmed. Your booking is confirmed once the payment arrives; the app that booked shows it."})
}
