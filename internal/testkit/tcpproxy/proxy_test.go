package tcpproxy_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/tcpproxy"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

func setup(t *testing.T) *tcpproxy.Proxy {
	t.Helper()
	p, err := tcpproxy.Listen("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestProxy(t *testing.T) {
	t.Run("Pipes", func(t *testing.T) {
		p := setup(t)
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := roundTrip(c, "hello"); err != nil || got != "hello" {
			t.Fatalf("round trip = %q, %v", got, err)
		}
		if s := p.Stats(); s.Accepted != 1 || s.BytesUp != 6 || s.BytesDown != 6 {
			t.Fatalf("stats %+v", s)
		}
	})

	t.Run("CutClosesAndRefusesUntilRestore", func(t *testing.T) {
		p := setup(t)
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := roundTrip(c, "before"); err != nil {
			t.Fatal(err)
		}
		p.Cut()
		if !p.IsCut() {
			t.Fatal("IsCut false after Cut")
		}
		if _, err := roundTrip(c, "during"); err == nil {
			t.Fatal("open connection survived the cut")
		}
		c2, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err) // the port stays bound: the dial succeeds, the pipe does not
		}
		defer c2.Close()
		if _, err := roundTrip(c2, "refused"); err == nil {
			t.Fatal("new connection piped while cut")
		}
		p.Restore()
		c3, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c3.Close()
		if got, err := roundTrip(c3, "after"); err != nil || got != "after" {
			t.Fatalf("after restore = %q, %v", got, err)
		}
		if s := p.Stats(); s.Cuts != 1 || s.Refused != 1 || s.Accepted != 2 {
			t.Fatalf("stats %+v", s)
		}
	})

	t.Run("TargetDownDropsClient", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		p, err := tcpproxy.Listen("127.0.0.1:0", dead)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := roundTrip(c, "x"); err == nil {
			t.Fatal("piped to a dead target")
		}
	})
}
