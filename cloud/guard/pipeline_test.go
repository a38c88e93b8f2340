package guard

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func pipeRedis(t *testing.T, url string) *redis.Client {
	t.Helper()
	if url == "" {
		url = os.Getenv("TEST_REDIS_URL")
	}
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	rdb, err := NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// TestAutoPipeBatches: commands of concurrent callers share pipelines, and
// every caller gets its own command's answer.
func TestAutoPipeBatches(t *testing.T) {
	t.Parallel()
	rdb := pipeRedis(t, "")
	p := newAutoPipe(rdb, 5*time.Second)
	var writes atomic.Int64
	p.group.Write = func(ctx context.Context, cmds [][]redis.Cmder) ([]struct{}, error) {
		writes.Add(1)
		return p.write(ctx, cmds)
	}
	ns := "pipetest-" + rand.Text()
	t.Cleanup(func() {
		for i := range 200 {
			rdb.Del(context.Background(), ns+strconv.Itoa(i))
		}
	})
	ctx := context.Background()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			<-start
			k := ns + strconv.Itoa(i)
			if err := p.Set(ctx, k, i, time.Minute).Err(); err != nil {
				t.Errorf("set %s: %v", k, err)
				return
			}
			got, err := p.Get(ctx, k).Int()
			if err != nil || got != i {
				t.Errorf("get %s = %d, %v; want %d", k, got, err, i)
			}
			if err := p.Get(ctx, k+"-missing").Err(); !errors.Is(err, redis.Nil) {
				t.Errorf("get of a missing key: %v, want redis.Nil", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := writes.Load(); n >= 600 {
		t.Errorf("600 commands took %d pipelines: none were shared", n)
	} else {
		t.Logf("600 commands in %d pipelines", n)
	}
}

// TestAutoPipeCallerGivesUp: a caller whose context ends while Redis does
// not answer gets the context's error at once, not the command still in
// flight (which -race would flag if it were read), and the writer gives up
// on its own timeout.
func TestAutoPipeCallerGivesUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() { // a Redis that accepts and never answers
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	// The writer would wait 10 s for the answer; the callers give up
	// after 50ms each.
	p := newAutoPipe(pipeRedis(t, "redis://"+ln.Addr().String()+"/0"), 10*time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			t0 := time.Now()
			err := p.Get(ctx, "k").Err()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want the caller's deadline", err)
			}
			if d := time.Since(t0); d > 3*time.Second {
				t.Errorf("gave up after %v, want about 50ms, not the writer's 10s", d)
			}
		})
	}
	wg.Wait()
}

// TestAutoPipeScriptAfterFlush: a script Redis no longer knows (restarted,
// or SCRIPT FLUSH) is sent again in full, through the pipeline, as
// redis.Script.Run does on a plain client.
func TestAutoPipeScriptAfterFlush(t *testing.T) {
	t.Parallel()
	rdb := pipeRedis(t, "")
	p := newAutoPipe(rdb, 5*time.Second)
	// A script new to Redis: its first EVALSHA is refused already. (The
	// flush below drops other tests' scripts too; they are sent again the
	// same way.)
	s := redis.NewScript("return ARGV[1] .. '-" + rand.Text() + "'")
	ctx := context.Background()
	first, err := s.Run(ctx, p, nil, "a").Text()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	again, err := s.Run(ctx, p, nil, "a").Text()
	if err != nil || again != first {
		t.Fatalf("after SCRIPT FLUSH: %q, %v; want %q", again, err, first)
	}
}
