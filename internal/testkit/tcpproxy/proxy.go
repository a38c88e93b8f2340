package tcpproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are a proxy's counters since it started.
type Stats struct {
	Accepted  uint64 // connections piped to the target
	Refused   uint64 // connections closed at once because the link was cut or the target was down
	Cuts      uint64 // times Cut closed the link
	BytesUp   uint64 // client → target, counted as read from the client
	BytesDown uint64 // target → client, counted as read from the target
	Active    int    // connections open now
}

// Proxy pipes TCP connections from its listener to a target. Its methods
// are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	dial   time.Duration

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[*pair]struct{}
	wg     sync.WaitGroup

	accepted, refused, cuts, up, down atomic.Uint64
}

type pair struct {
	client, server net.Conn
	once           sync.Once
}

// close closes both ends; the piping goroutines then return.
func (p *pair) close() {
	p.once.Do(func() {
		_ = p.client.Close()
		_ = p.server.Close()
	})
}

// Listen starts a proxy on addr ("127.0.0.1:0" picks a free port) to target.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcpproxy: listen %s: %w", addr, err)
	}
	p := &Proxy{ln: ln, target: target, dial: 2 * time.Second, conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's listening address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is Addr as an MQTT broker URL for paho.
func (p *Proxy) URL() string { return "tcp://" + p.Addr() }

// Target is where connections are piped to.
func (p *Proxy) Target() string { return p.target }

// Cut closes every piped connection and refuses new ones until Restore. The
// listener stays bound: the port is the edge's configured broker address and
// must still be there when the link comes back.
func (p *Proxy) Cut() {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		return
	}
	p.cut = true
	conns := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	p.cuts.Add(1)
	for _, c := range conns {
		c.close()
	}
}

// Restore lets new connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// IsCut reports whether the link is cut.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{
		Accepted: p.accepted.Load(), Refused: p.refused.Load(), Cuts: p.cuts.Load(),
		BytesUp: p.up.Load(), BytesDown: p.down.Load(), Active: active,
	}
}

// Close stops listening, closes every connection and waits for the piping
// goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (too many files): back off a moment
			// rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	refuse := p.cut || p.closed
	p.mu.Unlock()
	if refuse {
		p.refused.Add(1)
		_ = c.Close()
		return
	}
	s, err := net.DialTimeout("tcp", p.target, p.dial)
	if err != nil {
		// The target is down (a broker restarting): the client sees the
		// connection drop, as it would see the real broker refuse.
		p.refused.Add(1)
		_ = c.Close()
		return
	}
	pr := &pair{client: c, server: s}
	p.mu.Lock()
	if p.cut || p.closed {
		// Cut while dialling: Cut did not see this pair, so close it here.
		p.mu.Unlock()
		p.refused.Add(1)
		pr.close()
		return
	}
	p.conns[pr] = struct{}{}
	p.mu.Unlock()
	p.accepted.Add(1)

	var done sync.WaitGroup
	done.Add(2)
	go func() { defer done.Done(); p.pipe(pr, s, c, &p.up) }()
	go func() { defer done.Done(); p.pipe(pr, c, s, &p.down) }()
	done.Wait()

	p.mu.Lock()
	delete(p.conns, pr)
	p.mu.Unlock()
}

// pipe copies src to dst; when either side ends, both close, so a broker
// that goes away is seen by the client at once and the other way round.
func (p *Proxy) pipe(pr *pair, dst, src net.Conn, n *atomic.Uint64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			// Counted before the write: once the peer has the bytes (and may
			// answer), Stats already shows them.
			n.Add(uint64(k))
			if _, werr := dst.Write(buf[:k]); werr != nil {
				break
			}
		}
		if err != nil { // EOF, a reset or a cut: the close below says it all
			break
		}
	}
	pr.close()
}
