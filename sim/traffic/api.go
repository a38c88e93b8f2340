package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// apiError is the cloud's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type lotHit struct {
	ID        string `json:"id"`
	Available int    `json:"available_spots"`
	Total     int    `json:"total_spots"`
}

// search asks the cloud for lots near (lat, lng) free over the window.
func (w *World) search(ctx context.Context, lat, lng float64, start, end time.Time) ([]lotHit, error) {
	q := url.Values{}
	q.Set("lat", strconv.FormatFloat(lat, 'f', 6, 64))
	q.Set("lng", strconv.FormatFloat(lng, 'f', 6, 64))
	q.Set("radius_m", "5000")
	q.Set("starts_at", start.UTC().Format(time.RFC3339))
	q.Set("ends_at", end.UTC().Format(time.RFC3339))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.CloudURL+"/v1/lots?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("search: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var out struct {
		Lots []lotHit `json:"lots"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return out.Lots, nil
}

type holdAnswer struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	HoldExpiresAt time.Time `json:"hold_expires_at"`
	AccessToken   string    `json:"access_token"`
	Payment       *struct {
		SessionID string `json:"session_id"`
		URL       string `json:"url"`
	} `json:"payment"`
}

// holdOnce sends one POST /v1/reservations. status 0 means no answer.
func (w *World) holdOnce(ctx context.Context, base, key string, body map[string]string, timeout time.Duration) (status int, code string, retryAfter time.Duration, replayed bool, ans holdAnswer, err error) {
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/reservations", bytes.NewReader(b))
	if err != nil {
		return 0, "", 0, false, ans, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, "", 0, false, ans, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", 0, false, ans, err
	}
	replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		retryAfter = time.Duration(s) * time.Second
	}
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(raw, &ans); err != nil {
			return resp.StatusCode, "", 0, replayed, ans, fmt.Errorf("hold: decode: %w", err)
		}
		return resp.StatusCode, "", 0, replayed, ans, nil
	}
	var e apiError
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error.Code, retryAfter, replayed, ans, nil
}

// reservationStatus is what the driver's app shows.
func (w *World) reservationStatus(ctx context.Context, id string) (protocol.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.CloudURL+"/v1/reservations/"+id, nil)
	if err != nil {
		return "", err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reservation %s: %s", id, resp.Status)
	}
	var r struct {
		Status protocol.Status `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "", err
	}
	return r.Status, nil
}

// plateAnswer is the edge's answer to a camera.
type plateAnswer struct {
	Decision      string `json:"decision"`
	Reason        string `json:"reason"`
	ReservationID string `json:"reservation_id"`
	DecidedInUs   int64  `json:"decided_in_us"`
	EventID       string `json:"event_id"`
}

// postRead sends a camera read to an edge.
func (w *World) postRead(ctx context.Context, edgeURL, gateID, plate string, conf float64, at time.Time) (plateAnswer, error) {
	b, _ := json.Marshal(map[string]any{"gate_id": gateID, "plate": plate, "confidence": conf,
		"captured_at": at.UTC().Format(time.RFC3339Nano)})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, edgeURL+"/v1/plate-reads", bytes.NewReader(b))
	if err != nil {
		return plateAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.http.Do(req)
	if err != nil {
		return plateAnswer{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return plateAnswer{}, fmt.Errorf("plate read: %d %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	var a plateAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("plate read: %w", err)
	}
	if a.Decision == "" {
		return a, errors.New("plate read: answer without decision")
	}
	return a, nil
}
