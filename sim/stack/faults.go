package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
