package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/parkgate/parkgate/cloud"
	"github.com/parkgate/parkgate/cloud/booking"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Bounds of lot creation and search.
const (
	maxSpots        = 10_000
	defaultRadiusM  = 1_000
	maxRadiusM      = 100_000
	searchLimit     = 50
	defaultSearchIn = time.Hour
)

type createLotRequest struct {
	Name       *string         `json:"name"`
	Latitude   *float64        `json:"latitude"`
	Longitude  *float64        `json:"longitude"`
	TimeZone   string          `json:"time_zone"`
	Spots      json.RawMessage `json:"spots"`
	HourlyRate *cloud.Money    `json:"hourly_rate"`
	// Policies, optional: Go durations ("24h").
	FreeCancellation *string `json:"free_cancellation"`
	ExitGrace        *string `json:"exit_grace"`
}

// maxPolicy bounds a lot's policy durations: a year, as far ahead as a
// booking may start.
const maxPolicy = 366 * 24 * time.Hour

// policy reads an optional duration field; absent is def.
func policy(field string, v *string, def time.Duration) (cloud.Duration, error) {
	if v == nil {
		return cloud.Duration(def), nil
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d < 0 || d > maxPolicy {
		return 0, cloud.FieldError(field, "%s must be a duration such as \"24h\", from 0s to %s", field, maxPolicy)
	}
	return cloud.Duration(d), nil
}

func (req *createLotRequest) lot() (cloud.Lot, error) {
	var l cloud.Lot
	if req.Name == nil {
		return l, cloud.FieldError("name", "name is required")
	}
	name := strings.TrimSpace(*req.Name)
	if err := booking.CheckText("name", name, booking.MaxNameLen); err != nil {
		return l, err
	}
	switch {
	case req.Latitude == nil || math.IsNaN(*req.Latitude) || *req.Latitude < -90 || *req.Latitude > 90:
		return l, cloud.FieldError("latitude", "latitude must be a number from -90 to 90")
	case req.Longitude == nil || math.IsNaN(*req.Longitude) || *req.Longitude < -180 || *req.Longitude > 180:
		return l, cloud.FieldError("longitude", "longitude must be a number from -180 to 180")
	case req.HourlyRate == nil:
		return l, cloud.FieldError("hourly_rate", "hourly_rate is required")
	}
	rate, err := booking.CheckRate(*req.HourlyRate)
	if err != nil {
		return l, err
	}
	tz := req.TimeZone
	if tz == "" {
		tz = "UTC" // absent: the contract's times are UTC anyway
	}
	if err := booking.CheckTimeZone(tz); err != nil {
		return l, err
	}
	spots, err := spotLabels(req.Spots)
	if err != nil {
		return l, err
	}
	free, err := policy("free_cancellation", req.FreeCancellation, 0)
	if err != nil {
		return l, err
	}
	grace, err := policy("exit_grace", req.ExitGrace, cloud.DefaultExitGrace)
	if err != nil {
		return l, err
	}
	return cloud.Lot{Name: name, Latitude: *req.Latitude, Longitude: *req.Longitude,
		TimeZone: tz, HourlyRate: rate, Spots: spots, FreeCancellation: free, ExitGrace: grace}, nil
}

// spotLabels accepts a count (spots named "1" … "N") or a list of labels.
func spotLabels(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, cloud.FieldError("spots", "spots is required: a count or a list of labels")
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		if n < 1 || n > maxSpots {
			return nil, cloud.FieldError("spots", "spots must be from 1 to %d", maxSpots)
		}
		labels := make([]string, n)
		for i := range labels {
			labels[i] = strconv.Itoa(i + 1)
		}
		return labels, nil
	}
	var labels []string
	if err := json.Unmarshal(raw, &labels); err != nil {
		return nil, cloud.FieldError("spots", "spots must be a positive integer or a list of labels")
	}
	if len(labels) < 1 || len(labels) > maxSpots {
		return nil, cloud.FieldError("spots", "a lot has from 1 to %d spots", maxSpots)
	}
	seen := make(map[string]bool, len(labels))
	for _, l := range labels {
		if err := booking.CheckText("spots", l, booking.MaxSpotLabelLen); err != nil {
			return nil, cloud.FieldError("spots", "spot labels must be 1 to %d printable characters", booking.MaxSpotLabelLen)
		}
		if seen[l] {
			return nil, cloud.FieldError("spots", "spot label %q appears twice", l)
		}
		seen[l] = true
	}
	return labels, nil
}

func (s *Server) createLot(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody*4) // spot lists can be long
	var req createLotRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	lot, err := req.lot()
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	lot, err = s.DB.CreateLot(r.Context(), lot)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, lot)
}

// window reads starts_at and ends_at from the query; both absent means the
// next hour.
func (s *Server) window(r *http.Request) (time.Time, time.Time, error) {
	q := r.URL.Query()
	a, b := q.Get("starts_at"), q.Get("ends_at")
	if a == "" && b == "" {
		now := s.Now().UTC().Truncate(time.Second)
		return now, now.Add(defaultSearchIn), nil
	}
	start, err := time.Parse(time.RFC3339, a)
	if err != nil {
		return start, start, cloud.FieldError("starts_at", "starts_at must be an RFC 3339 time")
	}
	end, err := time.Parse(time.RFC3339, b)
	if err != nil {
		return start, end, cloud.FieldError("ends_at", "ends_at must be an RFC 3339 time")
	}
	start, end = start.UTC().Truncate(time.Microsecond), end.UTC().Truncate(time.Microsecond)
	if err := booking.CheckWindow(s.Now(), start, end); err != nil {
		return start, end, err
	}
	return start, end, nil
}

func queryFloat(r *http.Request, name string, def float64, min, max float64) (float64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		if math.IsNaN(def) {
			return 0, cloud.FieldError(name, "%s is required", name)
		}
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < min || f > max {
		return 0, cloud.FieldError(name, "%s must be a number from %g to %g", name, min, max)
	}
	return f, nil
}

type lotResult struct {
	ID             string      `json:"id"`
	Name           string      `json:"name"`
	Latitude       float64     `json:"latitude"`
	Longitude      float64     `json:"longitude"`
	DistanceM      float64     `json:"distance_m"`
	AvailableSpots int         `json:"available_spots"`
	TotalSpots     int         `json:"total_spots"`
	Price          cloud.Money `json:"price"`
	HourlyRate     cloud.Money `json:"hourly_rate"`
}

func (s *Server) searchLots(w http.ResponseWriter, r *http.Request) {
	lat, err := queryFloat(r, "lat", math.NaN(), -90, 90)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	lng, err := queryFloat(r, "lng", math.NaN(), -180, 180)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	radius, err := queryFloat(r, "radius_m", defaultRadiusM, 1, maxRadiusM)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	start, end, err := s.window(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	matches, err := s.search(r.Context(), lat, lng, radius, start, end)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	out := make([]lotResult, 0, len(matches))
	for _, m := range matches {
		price, err := cloud.Price(m.Lot.HourlyRate, start, end)
		if err != nil {
			writeError(w, r, s.Log, err)
			return
		}
		out = append(out, lotResult{
			ID: m.Lot.ID, Name: m.Lot.Name, Latitude: m.Lot.Latitude, Longitude: m.Lot.Longitude,
			DistanceM: math.Round(m.DistanceM*10) / 10, AvailableSpots: max(m.Available, 0),
			TotalSpots: m.Lot.TotalSpots, Price: price,
			HourlyRate: m.Lot.HourlyRate,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"lots": out})
}

var searchFallbacks = promauto.NewCounter(prometheus.CounterOpts{
	Name: "parkgate_search_replica_fallbacks_total",
	Help: "Searches answered by the primary because the read replica (DATABASE_READ_URL) could not be reached.",
})

// search reads from the replica when there is one. Its available_spots are
// then as of the replica's last replay of the primary's commits: they may
// count a spot free that a hold has just taken (the hold then answers 409
// no_availability) or miss one just freed, and a lot made a moment ago may
// be missing. That is all a search promises: a hint where to look. The
// availability endpoint and every hold read the primary (or the cache the
// holds invalidate), so no one is offered, let alone given, a spot the
// primary has taken. A replica that cannot be reached costs the primary
// the searches, as before there was one, rather than failing them.
func (s *Server) search(ctx context.Context, lat, lng, radius float64, start, end time.Time) ([]cloud.LotMatch, error) {
	if s.Reads == nil {
		return s.DB.SearchLots(ctx, lat, lng, radius, start, end, searchLimit)
	}
	matches, err := s.Reads.SearchLots(ctx, lat, lng, radius, start, end, searchLimit)
	if errors.Is(err, cloud.ErrStoreUnavailable) {
		searchFallbacks.Inc()
		return s.DB.SearchLots(ctx, lat, lng, radius, start, end, searchLimit)
	}
	return matches, err
}

func (s *Server) availability(w http.ResponseWriter, r *http.Request) {
	// The id is canonical before it keys anything: every spelling of a lot
	// shares one cache entry, and a string that is no UUID is 404 before
	// Redis is asked, leaving nothing behind.
	lotID, err := booking.LotID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	start, end, err := s.window(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	var store func(int, int)
	if s.Cache != nil {
		var avail, total int
		var ok bool
		if avail, total, ok, store = s.Cache.CachedAvailability(r.Context(), lotID, start, end); ok {
			writeJSON(w, http.StatusOK, availabilityBody(lotID, avail, total, start, end))
			return
		}
	}
	avail, total, err := s.DB.Availability(r.Context(), lotID, start, end)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if store != nil {
		store(avail, total)
	}
	writeJSON(w, http.StatusOK, availabilityBody(lotID, avail, total, start, end))
}

func availabilityBody(lotID string, avail, total int, start, end time.Time) map[string]any {
	return map[string]any{"lot_id": lotID, "available_spots": max(avail, 0), "total_spots": total,
		"starts_at": start, "ends_at": end}
}
