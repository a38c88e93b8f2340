package httpapi_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/edge/httpapi"
)

// serve runs the API on a real listener with the given limits, as
// parkedge does, and returns its address.
func serve(t *testing.T, l httpapi.Limits) string {
	t.Helper()
	b := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(b.srv.Config.Handler, l)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedWithin reports whether the server ended the connection (or
// answered and then ended it) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestLimits is finding 9: a 1-byte-per-second body and an idle keep-alive
// were both held for 45 s and more, and 100 KB of headers accepted.
func TestLimits(t *testing.T) {
	t.Parallel()
	t.Run("SlowBodyIsCut", func(t *testing.T) {
		t.Parallel()
		addr := serve(t, httpapi.Limits{Read: 300 * time.Millisecond, Idle: time.Minute})
		c := dial(t, addr)
		body := `{"gate_id":"entry-1","plate":"AB123C","confidence":0.9}`
		fmt.Fprintf(c, "POST /v1/plate-reads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		start := time.Now()
		go func() {
			for i := 0; i < len(body); i++ {
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		if !closedWithin(c, 3*time.Second) {
			t.Fatal("a trickled body held the connection past 3 s with a 300 ms read limit")
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("cut after %v", took)
		}
	})
	t.Run("IdleKeepAliveClosed", func(t *testing.T) {
		t.Parallel()
		addr := serve(t, httpapi.Limits{Idle: 300 * time.Millisecond})
		c := dial(t, addr)
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if !closedWithin(c, 3*time.Second) {
			t.Fatal("an idle keep-alive stayed open past 3 s with a 300 ms idle limit")
		}
	})
	t.Run("HeaderLimit", func(t *testing.T) {
		t.Parallel()
		addr := serve(t, httpapi.Limits{})
		for _, tt := range []struct {
			size   int
			status int
		}{{8 << 10, 200}, {17 << 10, http.StatusRequestHeaderFieldsTooLarge}, {100 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
			c := dial(t, addr)
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("a", tt.size))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != tt.status {
				t.Fatalf("%d bytes of header: %v %v, want %d", tt.size, resp, err, tt.status)
			}
			resp.Body.Close()
		}
	})
	t.Run("Defaults", func(t *testing.T) {
		srv := httpapi.NewServer(http.NotFoundHandler(), httpapi.Limits{})
		if srv.ReadTimeout != 10*time.Second || srv.IdleTimeout != 60*time.Second || srv.ReadHeaderTimeout <= 0 ||
			srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 16<<10 {
			t.Fatalf("server %+v", srv)
		}
	})
}
