package stack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one child process of the run, its output going to a log file.
type Proc struct {
	Name    string
	LogPath string

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// Pid is the process's id, for reading its CPU time and memory from /proc.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// startProc runs bin with args and env (added to a clean copy of ours),
// writing its stdout and stderr to dir/name.log.
func startProc(name, dir, bin string, args, env []string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(childEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a ^C to parksim reaches parksim, which then
	// stops its children in order instead of all dying at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is our environment without the variables that configure the
// children, so a developer's shell settings cannot point a simulated part at
// a real service.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PARKGATE_") || strings.HasPrefix(k, "STRIPE_") ||
			k == "DATABASE_URL" || k == "REDIS_URL" || k == "MQTT_URL" || k == "KAFKA_BROKERS" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// bindFailed reports whether the process ended because its listening
// address was taken (see Stack.startServing).
func (p *Proc) bindFailed() bool {
	exited, _ := p.Exited()
	return exited && strings.Contains(p.Tail(20), "address already in use")
}

// Stop sends SIGTERM and waits up to grace for the process to end, then
// kills it.
func (p *Proc) Stop(grace time.Duration) error {
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s; killed", p.Name, grace)
	}
}

// Tail returns the last n lines of the process's log, for error messages.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200, the process exits, or ctx ends.
func (p *Proc) waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	for {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited at start (%v); last lines of %s:\n%s", p.Name, err, p.LogPath, p.Tail(15))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready at %s within %s; last lines of %s:\n%s", p.Name, url, timeout, p.LogPath, p.Tail(15))
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logNote names a process's log for the start-up lines only when it will
// still be there after the run: Close removes the directory unless Keep, and
// a failed run copies the logs next to its report and says so then.
func (s *Stack) logNote(p *Proc) string {
	if !s.opts.Keep && s.opts.Dir == "" {
		return ""
	}
	return " (log " + p.LogPath + ")"
}
