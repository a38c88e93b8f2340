package pgbus

import (
	"context"
	"time"
)

// RunPurge purges events processed more than olderThan ago (see Purge) now
// and then every interval, until ctx ends.
func (b *Bus) RunPurge(ctx context.Context, every, olderThan time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := b.Purge(ctx, olderThan); err != nil && ctx.Err() == nil {
			b.log.Warn("purge payment events", "err", err)
		} else if n > 0 {
			b.log.Info("purged payment events", "n", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
