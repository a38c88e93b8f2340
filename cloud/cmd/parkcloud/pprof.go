package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves net/http/pprof on its own listener until ctx ends, when
// PprofAddr is set: opt-in, and never on the API's address, since a profile
// or a heap dump shows what the process holds (keys, tokens) to whoever
// can reach it.
func (m *Main) servePprof(ctx context.Context) {
	if m.PprofAddr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: m.PprofAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	m.Log.Warn("serving pprof", "addr", m.PprofAddr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		m.Log.Error("pprof", "err", err)
	}
}
