package stack

import (
	"context"
	"testing"
	"time"
)

// TestBindFailed: a child that could not bind its address is told apart
// from one that failed otherwise, so only the first is started again on
// another port.
func TestBindFailed(t *testing.T) {
	for _, tc := range []struct {
		name, say string
		want      bool
	}{
		{"taken", "parkcloud: listen tcp 127.0.0.1:4242: bind: address already in use", true},
		{"other", "parkcloud: migrate: connection refused", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := startProc("child", t.TempDir(), "/bin/sh", []string{"-c", "echo '" + tc.say + "' >&2; exit 1"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.waitHTTP(context.Background(), "http://127.0.0.1:1/", 10*time.Second); err == nil {
				t.Fatal("waitHTTP succeeded for a child that exited")
			}
			if got := p.bindFailed(); got != tc.want {
				t.Errorf("bindFailed = %v, want %v (log: %q)", got, tc.want, p.Tail(5))
			}
		})
	}
}
