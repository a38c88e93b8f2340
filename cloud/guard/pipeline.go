package guard

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parkgate/parkgate/cloud/internal/groupcommit"
)

// autoPipe sends the commands of concurrent callers to Redis together, in
// one pipeline: auto-pipelining, as rueidis does it and go-redis does not.
// Alone, a command goes at once, as it would without it. In a surge, one
// command per caller on its own connection cost a write and a read on
// each side and a wakeup of Redis per command, and the callers queued for
// the pool's connections — the other lots' requests behind the surge's. A
// pipeline carries a hundred commands for about the price of one.
//
// It serves as the redis.Scripter that the guard's scripts and redis_rate's
// GCRA run on, and as Get and Set for the idempotency fast path. Every
// command keeps its own answer and error; a caller whose context ends while
// its command waits gets the context's error, and its command may still run.
// A caller with several commands sends them together (sendAll): one round
// trip and one wake-up for all of them.
type autoPipe struct {
	rdb   redis.UniversalClient
	group groupcommit.Group[[]redis.Cmder, struct{}]
}

func newAutoPipe(rdb redis.UniversalClient, timeout time.Duration) *autoPipe {
	p := &autoPipe{rdb: rdb}
	p.group = groupcommit.Group[[]redis.Cmder, struct{}]{
		Write:    p.write,
		MaxBatch: 256,
		// Redis runs one command at a time: a second pipeline in flight
		// keeps the connection busy while the first's answers are read,
		// more would only interleave.
		MaxWriters: 2,
		Timeout:    timeout,
	}
	return p
}

func (p *autoPipe) write(ctx context.Context, bundles [][]redis.Cmder) ([]struct{}, error) {
	pipe := p.rdb.Pipeline()
	for _, cmds := range bundles {
		_ = pipe.BatchProcess(ctx, cmds...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return make([]struct{}, len(bundles)), nil
}

// sendAll queues cmds for the next pipeline, together, and waits for them.
// It returns ctx's error if ctx ends first (the commands are left to the
// writer), nil once every command holds its answer or its own error.
func (p *autoPipe) sendAll(ctx context.Context, cmds ...redis.Cmder) error {
	_, err := p.group.Do(ctx, cmds)
	return err
}

// build returns a pipeline to build commands with, unexecuted, so their
// arguments are encoded exactly as the client encodes them.
func (p *autoPipe) build() redis.Pipeliner { return p.rdb.Pipeline() }

// send queues c for the next pipeline and waits for it. If ctx ends first
// c is left to the writer, and the caller gets a fresh command holding the
// error from newFailed.
func send[C redis.Cmder](ctx context.Context, p *autoPipe, c C, newFailed func(context.Context, ...any) C) C {
	if err := p.sendAll(ctx, c); err != nil {
		failed := newFailed(ctx)
		failed.SetErr(err)
		return failed
	}
	return c
}

func (p *autoPipe) Get(ctx context.Context, key string) *redis.StringCmd {
	return send(ctx, p, p.build().Get(ctx, key), redis.NewStringCmd)
}

func (p *autoPipe) MGet(ctx context.Context, keys ...string) *redis.SliceCmd {
	return send(ctx, p, p.build().MGet(ctx, keys...), redis.NewSliceCmd)
}

func (p *autoPipe) Set(ctx context.Context, key string, value any, ttl time.Duration) *redis.StatusCmd {
	return send(ctx, p, p.build().Set(ctx, key, value, ttl), redis.NewStatusCmd)
}

func (p *autoPipe) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return send(ctx, p, p.build().Eval(ctx, script, keys, args...), redis.NewCmd)
}

func (p *autoPipe) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return send(ctx, p, p.build().EvalSha(ctx, sha1, keys, args...), redis.NewCmd)
}

func (p *autoPipe) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return send(ctx, p, p.build().EvalRO(ctx, script, keys, args...), redis.NewCmd)
}

func (p *autoPipe) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return send(ctx, p, p.build().EvalShaRO(ctx, sha1, keys, args...), redis.NewCmd)
}

// The rest of redis.Scripter and redis_rate's interface are rare and go
// straight to the client.

func (p *autoPipe) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return p.rdb.ScriptExists(ctx, hashes...)
}

func (p *autoPipe) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return p.rdb.ScriptLoad(ctx, script)
}

func (p *autoPipe) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return p.rdb.Del(ctx, keys...)
}
