package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/pgserver"
	"github.com/parkgate/parkgate/internal/testkit/redisserver"
)

// private starts the run's own Postgres and Redis when asked.
func (s *Stack) private() error {
	var err error
	if s.opts.PrivatePostgres {
		// Not under s.Dir: as root the server runs as the postgres user,
		// which must reach its directory, and s.Dir is private.
		if s.Postgres, err = pgserver.New(""); err != nil {
			return fmt.Errorf("stack: private postgres: %w", err)
		}
		s.opts.DatabaseURL = s.Postgres.URL()
		s.logf("postgres: private, %s", s.Postgres.Addr())
	}
	if s.opts.PrivateRedis {
		dir := filepath.Join(s.Dir, "redis")
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		if s.Redis, err = redisserver.New(dir); err != nil {
			return fmt.Errorf("stack: private redis: %w", err)
		}
		s.opts.RedisURL = s.Redis.URL()
		s.logf("redis: private, %s", s.Redis.URL())
	}
	return nil
}

// RestartPostgres restarts the run's private Postgres (fast shutdown, as
// an operator's restart): every connection of the cloud drops.
func (s *Stack) RestartPostgres() error {
	if s.Postgres == nil {
		return errors.New("stack: postgres is shared; restarting it needs Options.PrivatePostgres")
	}
	return s.Postgres.Restart()
}

// RestartRedis restarts the run's private Redis; it comes back empty.
func (s *Stack) RestartRedis() error {
	if s.Redis == nil {
		return errors.New("stack: redis is shared; restarting it needs Options.PrivateRedis")
	}
	return s.Redis.Restart()
}

// KillCloud kills parkcloud with SIGKILL — whatever it had committed to
// its outbox but not yet published stays unpublished — and starts it again
// on the same address, where the edges' proxies and the webhook gate point.
func (s *Stack) KillCloud(ctx context.Context) error {
	s.Cloud.kill()
	p, err := startProc("parkcloud", s.Dir, s.opts.CloudBin, []string{"serve"}, s.cloudEnv)
	if err != nil {
		return fmt.Errorf("stack: restart cloud: %w", err)
	}
	s.Cloud = p
	return p.waitHTTP(ctx, s.CloudURL+"/readyz", 60*time.Second)
}

// KillEdge kills lot i's parkedge with SIGKILL and starts it again on the
// same data directory and address.
func (s *Stack) KillEdge(ctx context.Context, i int) error {
	e := s.Edges[i]
	e.Proc.kill()
	return s.startEdge(ctx, e)
}

// WaitReady polls the cloud's /readyz until it answers 200 (every required
// dependency up) or timeout passes.
func (s *Stack) WaitReady(ctx context.Context, timeout time.Duration) error {
	return s.Cloud.waitHTTP(ctx, s.CloudURL+"/readyz", timeout)
}

// kill ends the process with SIGKILL and waits for it.
func (p *Proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// smallDisks mounts a tmpfs of smallDiskSize on each edge's data
// directory, so that edge_disk_full can fill a real disk. It needs root;
// when the mount is refused the edge keeps an ordinary directory and
// FillDisk says why it cannot.
func (s *Stack) smallDisks() {
	for _, e := range s.Edges {
		if err := os.MkdirAll(e.dataDir, 0o755); err != nil {
			e.diskErr = err
			continue
		}
		out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(smallDiskSize), "tmpfs", e.dataDir).CombinedOutput()
		if err != nil {
			e.diskErr = fmt.Errorf("mount a tmpfs on %s (needs root): %w: %s", e.dataDir, err, strings.TrimSpace(string(out)))
			s.logf("parkedge %s: no small disk: %v", e.Lot.Name, e.diskErr)
			continue
		}
		e.mounted = true
	}
}

// smallDiskSize is an edge's disk when the run can fill it: room for its
// store many times over, and quick to fill.
const smallDiskSize = 32 << 20

func (s *Stack) unmountDisks() {
	for _, e := range s.Edges {
		if e.mounted {
			_ = exec.Command("umount", e.dataDir).Run()
			e.mounted = false
		}
	}
}

// FillDisk fills lot i's disk to the last byte; release gives the room
// back.
func (s *Stack) FillDisk(i int) (release func() error, err error) {
	e := s.Edges[i]
	if !e.mounted {
		if e.diskErr == nil {
			e.diskErr = errors.New("the stack was started without Options.SmallDisks")
		}
		return nil, e.diskErr
	}
	path := filepath.Join(e.dataDir, "filler")
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("stack: fill disk: %w", err)
	}
	defer f.Close()
	chunk := make([]byte, 256<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				_ = os.Remove(path)
				return nil, fmt.Errorf("stack: fill disk: %w", err)
			}
			break
		}
	}
	// Down to the last byte: the last chunk stopped short of a page.
	for one := make([]byte, 1); ; {
		if _, err := f.Write(one); err != nil {
			break
		}
	}
	return func() error { return os.Remove(path) }, nil
}

// EdgeHealth reads an edge's /healthz.
func (s *Stack) EdgeHealth(ctx context.Context, e *Edge) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/healthz", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return nil, fmt.Errorf("edge healthz: %w", err)
	}
	return h, nil
}
