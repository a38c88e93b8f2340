package traffic

import (
	"context"
	mrand "math/rand/v2"
	"time"
)

// sleepUntil waits until t on the wall clock: plans are offsets from the
// run's start, so every driver keeps to the same clock. It reports false when
// ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

func sleep(ctx context.Context, d time.Duration) bool { return sleepUntil(ctx, time.Now().Add(d)) }

// jitter is a random duration in [0, d).
func jitter(rng *mrand.Rand, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(d)))
}
