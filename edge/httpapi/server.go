package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parkgate/parkgate/edge"
)

// Config is what NewHandler needs; Gatherer, OperatorToken, Mounts and
// Logger may be left zero.
type Config struct {
	LotID    string
	Agent    *edge.Agent
	Gatherer prometheus.Gatherer // served on /metrics
	// OperatorToken, when set, is required as a bearer token by operator
	// endpoints (the presence reset): cameras on the same network must not
	// be able to undo anti-passback.
	OperatorToken string
	Mounts        map[string]http.Handler // extra handlers by path prefix (the simulator's pins)
	Logger        *slog.Logger
}

type server struct {
	Config
}

// NewHandler returns the edge API.
func NewHandler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{Config: cfg}
	r := chi.NewRouter()
	r.Post("/v1/plate-reads", s.plateRead)
	r.Get("/v1/gates", s.gates)
	r.Post("/v1/presence/{plate}/reset", s.resetPresence)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if cfg.Gatherer != nil {
		r.Handle("/metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	for prefix, h := range cfg.Mounts {
		r.Mount(prefix, h)
	}
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, edge.Errorf(edge.ENotFound, "", "no such endpoint"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errorDetail{Code: "method_not_allowed", Message: "method not allowed"}})
	})
	return r
}

type plateReadRequest struct {
	GateID     string   `json:"gate_id"`
	Plate      string   `json:"plate"`
	Confidence *float64 `json:"confidence"`
	CapturedAt string   `json:"captured_at"`
}

type decisionJSON struct {
	Decision        string    `json:"decision"`
	Reason          string    `json:"reason"`
	ReservationID   string    `json:"reservation_id"`
	DecidedInUs     int64     `json:"decided_in_us"`
	Fuzzy           bool      `json:"fuzzy"`
	Plate           string    `json:"plate,omitempty"`
	OverstayMinutes int       `json:"overstay_minutes,omitempty"`
	EventID         string    `json:"event_id"`
	GateID          string    `json:"gate_id,omitempty"`
	At              time.Time `json:"at"`
}

func toJSON(r edge.Result) decisionJSON {
	return decisionJSON{
		Decision:        r.Decision.Decision,
		Reason:          r.Reason,
		ReservationID:   r.ReservationID,
		DecidedInUs:     r.DecidedIn.Microseconds(),
		Fuzzy:           r.Fuzzy,
		Plate:           r.Plate,
		OverstayMinutes: r.OverstayMinutes,
		EventID:         r.EventID,
		GateID:          r.GateID,
		At:              r.At.UTC(),
	}
}

func (s *server) plateRead(w http.ResponseWriter, r *http.Request) {
	var req plateReadRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case req.GateID == "":
		writeError(w, edge.Errorf(edge.EInvalid, "gate_id", "gate_id is required"))
		return
	case req.Plate == "":
		writeError(w, edge.Errorf(edge.EInvalid, "plate", "plate is required"))
		return
	case req.Confidence == nil:
		writeError(w, edge.Errorf(edge.EInvalid, "confidence", "confidence is required"))
		return
	}
	read := edge.PlateRead{GateID: req.GateID, Plate: req.Plate, Confidence: *req.Confidence}
	if req.CapturedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, req.CapturedAt)
		if err != nil {
			writeError(w, edge.Errorf(edge.EInvalid, "captured_at", "captured_at must be RFC 3339"))
			return
		}
		read.CapturedAt = t
	}
	res, err := s.Agent.HandleRead(r.Context(), read)
	if err != nil {
		if res.EventID != "" {
			// Decided (and the barrier moved) but the event is not durable:
			// the camera must not believe it was recorded.
			s.Logger.Error("gate event not recorded", "gate", read.GateID, "event_id", res.EventID, "err", err)
		}
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(res))
}

type gateJSON struct {
	ID           string        `json:"id"`
	Direction    string        `json:"direction"`
	Barrier      string        `json:"barrier"`
	Online       bool          `json:"online"`
	State        string        `json:"state"`
	SyncSeq      int64         `json:"sync_seq"`
	LastDecision *decisionJSON `json:"last_decision"`
}

func (s *server) gates(w http.ResponseWriter, _ *http.Request) {
	states := s.Agent.Gates()
	out := struct {
		LotID string     `json:"lot_id"`
		Gates []gateJSON `json:"gates"`
	}{LotID: s.LotID, Gates: make([]gateJSON, 0, len(states))}
	for _, g := range states {
		gj := gateJSON{ID: g.ID, Direction: g.Direction, Barrier: "closed", Online: g.Online, State: "offline", SyncSeq: g.SyncSeq}
		if g.BarrierOpen {
			gj.Barrier = "open"
		}
		if g.Online {
			gj.State = "online"
		}
		if g.LastDecision != nil {
			d := toJSON(*g.LastDecision)
			gj.LastDecision = &d
		}
		out.Gates = append(out.Gates, gj)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) resetPresence(w http.ResponseWriter, r *http.Request) {
	if s.OperatorToken != "" {
		got := r.Header.Get("Authorization")
		want := "Bearer " + s.OperatorToken
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: errorDetail{Code: "unauthorized", Message: "operator token required"}})
			return
		}
	}
	var req struct {
		GateID string `json:"gate_id"`
	}
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, err)
			return
		}
	}
	res, err := s.Agent.ResetPresence(r.Context(), chi.URLParam(r, "plate"), req.GateID)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"plate": res.Plate, "gate_id": res.GateID, "event_id": res.EventID, "reservation_id": res.ReservationID,
	})
}

// decode reads a small JSON body; what is wrong with it is the client's
// fault and comes back as an EInvalid error.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return edge.Errorf(edge.EInvalid, "", "empty body")
		}
		var tErr *json.UnmarshalTypeError
		if errors.As(err, &tErr) {
			return edge.Errorf(edge.EInvalid, tErr.Field, "%s has the wrong type", tErr.Field)
		}
		return edge.Errorf(edge.EInvalid, "", "body is not valid JSON")
	}
	return nil
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// errorStatus is the one mapping from domain codes to HTTP statuses.
func errorStatus(code string) int {
	switch code {
	case edge.EInvalid:
		return http.StatusBadRequest
	case edge.ENotFound:
		return http.StatusNotFound
	case edge.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	code := edge.ErrorCode(err)
	d := errorDetail{Code: code, Message: "internal error"}
	var e *edge.Error
	if errors.As(err, &e) {
		d.Message, d.Field = e.Message, e.Field
	}
	writeJSON(w, errorStatus(code), errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
