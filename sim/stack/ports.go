package stack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/proc"
)

// serve runs h in this process on a free loopback port until Close.
func (s *Stack) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// startServing starts a child that serves HTTP on an address picked for it
// (env gives its environment for that address) and waits until health
// answers. Ports are picked free and bound by the child a moment later;
// meanwhile another process may bind the port (proc.FreePort picks below
// the ephemeral range, so no outgoing connection can), so a child that
// could not bind is started again on another port, three tries in all.
func (s *Stack) startServing(ctx context.Context, name, bin string, args []string, env func(addr string) []string, health string, wait time.Duration) (*Proc, string, error) {
	for attempt := 1; ; attempt++ {
		addr, err := proc.FreeAddr()
		if err != nil {
			return nil, "", err
		}
		p, err := startProc(name, s.Dir, bin, args, env(addr))
		if err != nil {
			return nil, "", fmt.Errorf("stack: %w", err)
		}
		err = p.waitHTTP(ctx, "http://"+addr+health, wait)
		if err == nil {
			return p, addr, nil
		}
		if !p.bindFailed() || attempt == 3 {
			_ = p.Stop(5 * time.Second) // one that is up but never answered
			return nil, "", fmt.Errorf("stack: %w", err)
		}
		s.logf("%s: %s was taken before it could bind; trying another port", name, addr)
	}
}
