package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
)

// driverConn is one simulated driver's own keep-alive connection, speaking
// HTTP/1.1 directly. A surge benchmark that measures the service on the
// machine that also generates the load must keep the generator cheap: with
// net/http's client (two goroutines and a pool lookup per request) 1,000
// requests at once cost the box about twice what the server spends on
// them, and the other lots' latency measured the generator. Like wrk, this
// writes the request and parses the answer on the caller's goroutine.
type driverConn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
	wb   bytes.Buffer
}

func dialDriver(t testing.TB, serverURL string) *driverConn {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	d := &driverConn{addr: u.Host}
	if err := d.dial(); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *driverConn) dial() error {
	c, err := net.Dial("tcp", d.addr)
	if err != nil {
		return err
	}
	d.c, d.br = c, bufio.NewReader(c)
	return nil
}

// do sends one request and reads its answer; a connection the server has
// closed is dialled again once, as a client's pool would. It may run on any
// goroutine: it reports rather than stops the test.
func (d *driverConn) do(method, path string, body any, hdr map[string]string) (reply, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return reply{}, err
		}
	}
	d.wb.Reset()
	fmt.Fprintf(&d.wb, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, d.addr, len(raw))
	for k, v := range hdr {
		fmt.Fprintf(&d.wb, "%s: %s\r\n", k, v)
	}
	d.wb.WriteString("\r\n")
	d.wb.Write(raw)
	for attempt := 0; ; attempt++ {
		r, err := d.roundTrip(method)
		if err == nil {
			return r, nil
		}
		_ = d.c.Close()
		if attempt == 1 {
			return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
		}
		if err := d.dial(); err != nil {
			return reply{}, fmt.Errorf("%s %s: redial: %w", method, path, err)
		}
	}
}

func (d *driverConn) roundTrip(method string) (reply, error) {
	if _, err := d.c.Write(d.wb.Bytes()); err != nil {
		return reply{}, err
	}
	resp, err := http.ReadResponse(d.br, &http.Request{Method: method})
	if err != nil {
		return reply{}, err
	}
	out, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return reply{}, err
	}
	if resp.Close {
		_ = d.c.Close()
		if err := d.dial(); err != nil {
			return reply{}, err
		}
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: out}, nil
}

func (d *driverConn) close() { _ = d.c.Close() }
