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
	"os"
	"os/exec"
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
	addr         string
	c            net.Conn
	br           *bufio.Reader
	wb           bytes.Buffer // the prepared request
	method, path string
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

// do sends one request and reads its answer: prepare, then send.
func (d *driverConn) do(method, path string, body any, hdr map[string]string) (reply, error) {
	if err := d.prepare(method, path, body, hdr); err != nil {
		return reply{}, err
	}
	return d.send()
}

// prepare encodes the request that send sends (as often as asked): a crowd
// encodes its requests before the signal, as wrk does, so the generator's
// work in the rush is the network's alone.
func (d *driverConn) prepare(method, path string, body any, hdr map[string]string) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	d.method, d.path = method, path
	d.wb.Reset()
	fmt.Fprintf(&d.wb, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, d.addr, len(raw))
	for k, v := range hdr {
		fmt.Fprintf(&d.wb, "%s: %s\r\n", k, v)
	}
	d.wb.WriteString("\r\n")
	d.wb.Write(raw)
	return nil
}

// send sends the prepared request and reads its answer; a connection the
// server has closed is dialled again once, as a client's pool would. It may
// run on any goroutine: it reports rather than stops the test.
func (d *driverConn) send() (reply, error) {
	for attempt := 0; ; attempt++ {
		r, err := d.roundTrip(d.method)
		if err == nil {
			return r, nil
		}
		_ = d.c.Close()
		if attempt == 1 {
			return reply{}, fmt.Errorf("%s %s: %w", d.method, d.path, err)
		}
		if err := d.dial(); err != nil {
			return reply{}, fmt.Errorf("%s %s: redial: %w", d.method, d.path, err)
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

// A load generator that shares the server's process shares its run queue:
// the time its goroutines wait behind the server's is counted against the
// service. BenchmarkSurge therefore runs its drivers as child processes of
// the test binary, each a test function that serveChild turns into a
// command loop: one JSON config in childEnv, one command per line on stdin,
// one JSON answer per line on stdout.

const childEnv = "PARKGATE_BENCH_CHILD"

// child is the handle on a child process: one command at a time.
type child struct {
	in  io.Writer
	out *bufio.Scanner
}

// startChild runs the test named testName in a child process with cfg, and
// waits until it is ready.
func startChild(b *testing.B, testName string, cfg any) *child {
	b.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+testName+"$", "-test.count=1", "-test.timeout=20m")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = in.Close() // the child ends at EOF
		_ = cmd.Wait()
	})
	c := &child{in: in, out: bufio.NewScanner(out)}
	c.out.Buffer(nil, 64<<20)
	c.reply(b)
	return c
}

// run sends a command and decodes the answer into out (unless nil).
func (c *child) run(b *testing.B, command string, out any) {
	if _, err := fmt.Fprintln(c.in, command); err != nil {
		b.Error(err)
		return
	}
	raw := c.reply(b)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.Error(err)
		}
	}
}

// reply is the child's next line of its own; the test framework's are
// skipped.
func (c *child) reply(b *testing.B) []byte {
	for c.out.Scan() {
		if line, ok := bytes.CutPrefix(c.out.Bytes(), []byte("CHILD ")); ok {
			return line
		}
	}
	b.Errorf("the child process ended: %v", c.out.Err())
	return []byte("null")
}

// serveChild is the child's side: it skips unless run by startChild,
// decodes the config into cfg, and has setup prepare (calling ready when it
// is) and return the command handler.
func serveChild(t *testing.T, cfg any, setup func(ready func()) func(command string) any) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("a benchmark's load generator; the benchmark runs it")
	}
	if err := json.Unmarshal([]byte(raw), cfg); err != nil {
		t.Fatal(err)
	}
	say := func(v any) {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("CHILD %s\n", j)
	}
	handle := setup(func() { say("ready") })
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		say(handle(in.Text()))
	}
}
