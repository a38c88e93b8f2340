package hwtest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/parkgate/parkgate/edge/hw/hwtest"
)

func TestPinsHandler(t *testing.T) {
	loop := hwtest.NewPin("entry-1.loop")
	_ = loop.In(gpio.PullDown, gpio.RisingEdge)
	srv := httptest.NewServer(hwtest.PinsHandler("/v1/sim", map[string]*hwtest.Pin{"entry-1.loop": loop}))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/sim/pins/entry-1.loop", "application/json", strings.NewReader(`{"level":"high"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST: %v %v", resp, err)
	}
	resp.Body.Close()
	if !loop.WaitForEdge(time.Second) || loop.Read() != gpio.High {
		t.Fatal("POST did not drive the input")
	}
	resp, err = http.Get(srv.URL + "/v1/sim/pins")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Pins []struct {
			Name  string `json:"name"`
			Level string `json:"level"`
			Edges []struct {
				Level string    `json:"level"`
				At    time.Time `json:"at"`
			} `json:"edges"`
		} `json:"pins"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Pins) != 1 || out.Pins[0].Level != "high" || len(out.Pins[0].Edges) != 1 || out.Pins[0].Edges[0].At.IsZero() {
		t.Fatalf("GET pins = %+v", out)
	}
	resp2, _ := http.Post(srv.URL+"/v1/sim/pins/nope", "application/json", strings.NewReader(`{"level":"high"}`))
	if resp2.StatusCode != 404 {
		t.Fatalf("unknown pin: %d", resp2.StatusCode)
	}
	resp2.Body.Close()
}
