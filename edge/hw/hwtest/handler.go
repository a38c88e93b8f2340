package hwtest

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// PinsHandler lets a simulator in another process play the hardware of
// an agent running with fake pins. Mounted under a prefix it serves:
//
//	GET  {prefix}/pins          every pin: name, level, recorded edges (and
//	                            with ?take=1 forgets the edges it returned)
//	POST {prefix}/pins/{name}   body {"level":"high"|"low"} drives an input
//	                            (the loop detector, the override button)
//
// Pin names are "gate.role", e.g. "entry-1.barrier". Times are RFC 3339
// with nanoseconds, so a simulator can subtract them from its own clock on
// the same machine.
func PinsHandler(prefix string, pins map[string]*Pin) http.Handler {
	type edgeJSON struct {
		Level string    `json:"level"`
		At    time.Time `json:"at"`
	}
	type pinJSON struct {
		Name  string     `json:"name"`
		Level string     `json:"level"`
		Edges []edgeJSON `json:"edges"`
	}
	level := func(l gpio.Level) string {
		if l == gpio.High {
			return "high"
		}
		return "low"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, prefix)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case rest == "/pins" && r.Method == http.MethodGet:
			names := make([]string, 0, len(pins))
			for n := range pins {
				names = append(names, n)
			}
			sort.Strings(names)
			out := struct {
				Pins []pinJSON `json:"pins"`
			}{Pins: []pinJSON{}}
			for _, n := range names {
				p := pins[n]
				edges := p.Edges()
				if r.URL.Query().Get("take") == "1" {
					edges = p.TakeEdges()
				}
				pj := pinJSON{Name: n, Level: level(p.Read()), Edges: make([]edgeJSON, 0, len(edges))}
				for _, e := range edges {
					pj.Edges = append(pj.Edges, edgeJSON{Level: level(e.Level), At: e.At})
				}
				out.Pins = append(out.Pins, pj)
			}
			_ = json.NewEncoder(w).Encode(out)
		case strings.HasPrefix(rest, "/pins/") && r.Method == http.MethodPost:
			p, ok := pins[strings.TrimPrefix(rest, "/pins/")]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such pin"}}`))
				return
			}
			var body struct {
				Level string `json:"level"`
			}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&body); err != nil ||
				(body.Level != "high" && body.Level != "low") {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":{"code":"invalid_request","message":"want {\"level\":\"high\"|\"low\"}","field":"level"}}`))
				return
			}
			p.Set(gpio.Level(body.Level == "high"))
			_, _ = w.Write([]byte(`{"level":"` + body.Level + `"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such sim endpoint"}}`))
		}
	})
}
