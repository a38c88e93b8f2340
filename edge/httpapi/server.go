package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parkgate/parkgate/edge"
)

// Config is what NewHandler needs; Gatherer, CameraToken, OperatorToken,
// Mounts and Logger may be left zero.
type Config struct {
	LotID    string
	Agent    *edge.Agent
	Gatherer prometheus.Gatherer // served on /metrics
	// CameraToken, when set, is required of camera calls (plate reads) as a
	// bearer token or as the password of HTTP Basic.
	CameraToken string
	// OperatorToken is required as a bearer token by operator calls
	// (presence reset, remote open); without one they answer 403
	// operator_disabled, so a lot that never set one has no open door.
	OperatorToken string
	Mounts        map[string]http.Handler // extra handlers by path prefix (the simulator's pins)
	// Health adds fields to /healthz (the store's state); it may set
	// "status". /healthz stays 200: the gate is deciding.
	Health func() map[string]any
	Logger *slog.Logger
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
	r.Use(jsonBodies)
	r.Post("/v1/plate-reads", s.camera(s.plateRead))
	r.Post("/v1/access-codes", s.camera(s.accessCode))
	r.Get("/v1/gates", s.gates)
	r.Post("/v1/gates/{gate_id}/open", s.operator(s.openGate))
	r.Post("/v1/presence/{plate}/reset", s.operator(s.resetPresence))
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		body := map[string]any{"status": "ok"}
		if cfg.Health != nil {
			for k, v := range cfg.Health() {
				body[k] = v
			}
		}
		writeJSON(w, http.StatusOK, body)
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
	Note            string    `json:"note,omitempty"`
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
		Note:            r.Note,
	}
}

func (s *server) plateRead(w http.ResponseWriter, r *http.Request) {
	read, err := parsePlateRead(w, r.Body)
	if err != nil {
		writeError(w, err)
		return
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

// accessCode is POST /v1/access-codes: a code shown at a gate, answered as
// a plate read is.
func (s *server) accessCode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		GateID string `json:"gate_id"`
		Code   string `json:"code"`
	}
	if err := decode(w, r.Body, &req); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case req.GateID == "":
		writeError(w, edge.Errorf(edge.EInvalid, "gate_id", "gate_id is required"))
		return
	case req.Code == "":
		writeError(w, edge.Errorf(edge.EInvalid, "code", "code is required"))
		return
	}
	res, err := s.Agent.HandleCode(r.Context(), req.GateID, req.Code)
	if err != nil {
		if res.EventID != "" {
			s.Logger.Error("gate event not recorded", "gate", req.GateID, "event_id", res.EventID, "err", err)
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
	var req struct {
		GateID string `json:"gate_id"`
	}
	if r.ContentLength != 0 {
		// The body is optional: an empty one names no gate.
		if err := decode(w, r.Body, &req); err != nil && !isEmptyBody(err) {
			writeError(w, err)
			return
		}
	}
	res, err := s.Agent.ResetPresence(r.Context(), chi.URLParam(r, "plate"), req.GateID)
	if err != nil {
		writeError(w, err)
		return
	}
	s.Logger.Info("presence reset", "plate", res.Plate, "gate", res.GateID, "event_id", res.EventID, "remote_addr", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{
		"plate": res.Plate, "gate_id": res.GateID, "event_id": res.EventID, "reservation_id": res.ReservationID,
	})
}

// maxReasonRunes bounds a remote open's reason: enough for a sentence, not
// a place to store documents in every gate event.
const maxReasonRunes = 200

func (s *server) openGate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decode(w, r.Body, &req); err != nil {
		writeError(w, err)
		return
	}
	reason := strings.TrimSpace(req.Reason)
	switch {
	case reason == "":
		writeError(w, edge.Errorf(edge.EInvalid, "reason", "reason is required: say why the gate is opened"))
		return
	case utf8.RuneCountInString(reason) > maxReasonRunes:
		writeError(w, edge.Errorf(edge.EInvalid, "reason", "reason longer than %d characters", maxReasonRunes))
		return
	case strings.IndexFunc(reason, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		writeError(w, edge.Errorf(edge.EInvalid, "reason", "reason may hold printable characters only"))
		return
	}
	gateID := chi.URLParam(r, "gate_id")
	res, err := s.Agent.RemoteOpen(r.Context(), gateID, reason)
	if err != nil {
		if res.EventID != "" {
			s.Logger.Error("remote open not recorded", "gate", gateID, "event_id", res.EventID, "err", err)
		}
		writeError(w, err)
		return
	}
	// The audit trail: the event reaches the cloud through the outbox, and
	// the log keeps where the request came from, which the event does not.
	s.Logger.Info("remote open", "gate", res.GateID, "event_id", res.EventID, "reason", reason, "remote_addr", r.RemoteAddr)
	writeJSON(w, http.StatusOK, toJSON(res))
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
	case edge.EUnsupportedMedia:
		return http.StatusUnsupportedMediaType
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
	status := errorStatus(code)
	var se *statusError
	if errors.As(err, &se) {
		status = se.status
	}
	writeJSON(w, status, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
