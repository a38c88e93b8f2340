package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Pins plays the hardware of an edge running with fake pins, through the
// HTTP endpoints the agent serves in sim mode (edge/hw/hwtest.PinsHandler):
// it drives the inputs (loop detector, override) and reads the edges the
// agent made on the outputs (barrier relay, camera trigger).
type Pins struct {
	base   string
	client *http.Client
}

// PinEdge is one recorded level change.
type PinEdge struct {
	Level string    `json:"level"`
	At    time.Time `json:"at"`
}

// PinState is one pin as the agent reports it.
type PinState struct {
	Name  string    `json:"name"`
	Level string    `json:"level"`
	Edges []PinEdge `json:"edges"`
}

// pinPrefixes are where an agent may mount its fake pins.
var pinPrefixes = []string{"/v1/sim"}

// probePins finds the agent's fake pins, or returns nil.
func probePins(ctx context.Context, edgeURL string) *Pins {
	c := &http.Client{Timeout: 5 * time.Second}
	for _, p := range pinPrefixes {
		pins := &Pins{base: edgeURL + p, client: c}
		if _, err := pins.List(ctx, false); err == nil {
			return pins
		}
	}
	return nil
}

// List returns every pin with its recorded edges; take makes the agent
// forget the edges it returned, so a long run does not pile them up.
func (p *Pins) List(ctx context.Context, take bool) ([]PinState, error) {
	u := p.base + "/pins"
	if take {
		u += "?take=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("pins: %s: %s", u, resp.Status)
	}
	var out struct {
		Pins []PinState `json:"pins"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("pins: %w", err)
	}
	return out.Pins, nil
}

// Set drives an input pin such as "entry-1.loop" high or low.
func (p *Pins) Set(ctx context.Context, name string, high bool) error {
	level := "low"
	if high {
		level = "high"
	}
	b, _ := json.Marshal(map[string]string{"level": level})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/pins/"+name, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pins: set %s %s: %s", name, level, resp.Status)
	}
	return nil
}

// Rising returns the rising edges each pin recorded since the last call,
// by pin name; the agent forgets them.
func (p *Pins) Rising(ctx context.Context) (map[string][]time.Time, error) {
	pins, err := p.List(ctx, true)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]time.Time, len(pins))
	for _, pin := range pins {
		for _, e := range pin.Edges {
			if e.Level == "high" {
				out[pin.Name] = append(out[pin.Name], e.At)
			}
		}
	}
	return out, nil
}
