package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(m *Main) bool
	}{
		{"Defaults", nil, "", func(m *Main) bool {
			return m.Options.Scenario == "demo" && m.Options.Services && m.Options.ReportDir == "reports"
		}},
		{"Sizes", []string{"--scenario", "hot-lot", "--lots", "1", "--spots", "3", "--drivers", "50", "--duration", "20s"}, "",
			func(m *Main) bool {
				o := m.Options
				return o.Scenario == "hot-lot" && o.Size.Spots == 3 && o.Size.Drivers == 50 && o.Size.Duration == 20*time.Second
			}},
		{"LoadMode", []string{"--load", "--rate", "12"}, "", func(m *Main) bool {
			return m.Options.Scenario == "load" && m.Options.Size.Rate == 12
		}},
		{"UnknownScenario", []string{"--scenario", "nope"}, "no scenario", nil},
		{"ShortDuration", []string{"--duration", "5s"}, "at least 15s", nil},
		{"NegativeSize", []string{"--spots", "-1"}, "must not be negative", nil},
		{"StrayArgument", []string{"demo"}, "unexpected arguments", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
			err := m.ParseFlags(tt.args)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			case tt.check != nil && !tt.check(m):
				t.Fatalf("options %+v", m.Options)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb}
	if code, err := m.Run(context.Background(), []string{"list"}); code != exitPass || err != nil {
		t.Fatalf("list: %d %v", code, err)
	}
	for _, name := range []string{"happy", "offline-edge", "late-payment", "broker-restart", "hot-lot", "demo", "load"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("list lacks %s", name)
		}
	}
	if code, _ := m.Run(context.Background(), []string{"fly"}); code != exitError {
		t.Errorf("unknown command: exit %d", code)
	}
	if code, _ := m.Run(context.Background(), nil); code != exitError {
		t.Errorf("no command: exit %d", code)
	}
}

// TestFleetFlags covers the refusals of `parksim fleet`: each comes before
// anything is started, so a mistake costs nothing.
func TestFleetFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"NoLots", []string{"--lots", "0"}, "--lots and --spots"},
		{"NoSpots", []string{"--spots", "-2"}, "--lots and --spots"},
		{"NoRate", []string{"--rate", "0"}, "--rate must be positive"},
		{"ShortDuration", []string{"--duration", "1s"}, "at least 5s"},
		{"NegativeOutage", []string{"--outage", "-1s"}, "--outage and --idle must not be negative"},
		{"NegativeIdle", []string{"--idle", "-1s"}, "--outage and --idle must not be negative"},
		{"StrayArgument", []string{"big"}, "unexpected arguments"},
		{"UnknownFlag", []string{"--lot", "3"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
			code, err := m.Run(context.Background(), append([]string{"fleet", "--report-dir", t.TempDir()}, tt.args...))
			if code != exitError || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("exit %d, error %v; want %d and %q", code, err, exitError, tt.wantErr)
			}
		})
	}
}
