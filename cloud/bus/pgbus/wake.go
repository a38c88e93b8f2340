package pgbus

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parkgate/parkgate/cloud/bus"
)

// listen keeps a dedicated connection LISTENing on Channel and turns each
// notification into a wake token, reconnecting with backoff when the
// connection drops. Workers poll meanwhile, so an outage here only slows
// pickup down to the poll interval.
func (b *Bus) listen(ctx context.Context, wake chan<- struct{}) {
	retry := bus.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	for {
		listening, err := b.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if listening {
			failures = 0
		}
		failures++
		b.log.Warn("listen connection lost; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry.Delay(failures)):
		}
	}
}

// listenOnce runs one listening connection until it fails; listening
// reports whether it got as far as LISTEN.
func (b *Bus) listenOnce(ctx context.Context, wake chan<- struct{}) (listening bool, err error) {
	// Its own connection, not one of the pool's: it is held for as long as
	// Run lasts and must not shrink the pool the webhook publishes through.
	cfg := b.pool.Config().ConnConfig
	cfg.RuntimeParams["application_name"] = "parkgate-pgbus-listen"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	if b.onListen != nil {
		b.onListen(conn.PgConn().PID())
	}
	// Notifications sent while no connection listened are lost: look once.
	signal(wake)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		signal(wake)
	}
}

// signal hands out a wake token unless one is already waiting.
func signal(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// depthEvery is how often a Run samples the queue depth gauge.
const depthEvery = 15 * time.Second
