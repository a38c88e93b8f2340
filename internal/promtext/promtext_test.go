package promtext

import (
	"reflect"
	"strings"
	"testing"
)

func TestUnlabelled(t *testing.T) {
	page := `# HELP parkgate_relay_published_total Changes published.
# TYPE parkgate_relay_published_total counter
parkgate_relay_published_total 4798
parkgate_relay_mark_group_size_bucket{le="1"} 3
parkgate_relay_mark_group_size_sum 1.5e+03
parkgate_relay_mark_group_size_count 120

parkedge_mqtt_connected 1
garbage
parkedge_outbox_depth not-a-number
`
	got, err := Unlabelled(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"parkgate_relay_published_total":       4798,
		"parkgate_relay_mark_group_size_sum":   1500,
		"parkgate_relay_mark_group_size_count": 120,
		"parkedge_mqtt_connected":              1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestSeries(t *testing.T) {
	page := `# TYPE parkgate_stripe_call_seconds histogram
parkgate_stripe_call_seconds_bucket{op="refund",outcome="ok",le="0.001"} 2
parkgate_stripe_call_seconds_sum{op="refund",outcome="ok"} 0.25
parkgate_stripe_call_seconds_count{op="refund",outcome="ok"} 3
parkgate_lot_busy_total 7 1733500000000
odd{reason="a b} c"} 4
parkgate_up{job="x"}
`
	got, err := Series(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		`parkgate_stripe_call_seconds_bucket{op="refund",outcome="ok",le="0.001"}`: 2,
		`parkgate_stripe_call_seconds_sum{op="refund",outcome="ok"}`:               0.25,
		`parkgate_stripe_call_seconds_count{op="refund",outcome="ok"}`:             3,
		"parkgate_lot_busy_total": 7,
		`odd{reason="a b} c"}`:    4,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
