package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// resView is a reservation as the driver's app reads it with its access
// token.
type resView struct {
	Status     protocol.Status `json:"status"`
	EndsAt     time.Time       `json:"ends_at"`
	AccessCode string          `json:"access_code"`
	Overstay   *struct {
		Status  string `json:"status"`
		Amount  int64  `json:"amount"`
		Payment *struct {
			SessionID string `json:"session_id"`
		} `json:"payment"`
	} `json:"overstay"`
	Refund *struct {
		Amount int64 `json:"amount"`
	} `json:"refund"`
}

// call sends one request to the cloud as the driver (bearer token) and
// returns the status, the error code of a refusal, and the body. status 0
// means no answer.
func (w *World) call(ctx context.Context, method, path, token, key string, in any) (int, string, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, "", nil, err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, w.cfg.CloudURL+path, body)
	if err != nil {
		return 0, "", nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e apiError
		_ = json.Unmarshal(raw, &e)
		return resp.StatusCode, e.Error.Code, raw, nil
	}
	return resp.StatusCode, "", raw, nil
}

// reservation reads the driver's reservation with its access token.
func (w *World) reservation(ctx context.Context, id, token string) (resView, error) {
	var v resView
	st, code, raw, err := w.call(ctx, http.MethodGet, "/v1/reservations/"+id, token, "", nil)
	if err != nil {
		return v, err
	}
	if st != http.StatusOK {
		return v, fmt.Errorf("reservation %s: %d %s", id, st, code)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("reservation %s: %w", id, err)
	}
	return v, nil
}

// extensionAnswer is the 201 of an extension.
type extensionAnswer struct {
	ID      string `json:"id"`
	Payment *struct {
		SessionID string `json:"session_id"`
	} `json:"payment"`
}

// postCode shows an access code at an edge's gate.
func (w *World) postCode(ctx context.Context, edgeURL, gateID, code string) (plateAnswer, error) {
	b, _ := json.Marshal(map[string]any{"gate_id": gateID, "code": code})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, edgeURL+"/v1/access-codes", bytes.NewReader(b))
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
	if resp.StatusCode != http.StatusOK {
		return plateAnswer{}, fmt.Errorf("access code: %d %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	var a plateAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("access code: %w", err)
	}
	if a.Decision == "" {
		return a, errors.New("access code: answer without decision")
	}
	return a, nil
}
