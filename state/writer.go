package state

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bounds of the shared stored-object index and rebuild items.
const (
	// lookupTimeout is the most a request waits on Redis, and only on a local miss while Redis is up.
	lookupTimeout = 50 * time.Millisecond
	// objectTTL is how long Redis keeps an object's region after it was last recorded.
	objectTTL = 30 * 24 * time.Hour
	// maxSharedItems is the largest rebuild item list written to Redis; larger ones stay local.
	maxSharedItems = 4 << 20
	// writeQueue bounds the background writes waiting for Redis; when it is full, writes are dropped (the local
	// copy stays, and another replica finds the object by asking the regions).
	writeQueue = 1024
)

// write is one background write to Redis.
type write func(ctx context.Context, c redis.UniversalClient) error

// queue hands a write to the background writer without waiting. It reports false when the write was dropped.
func (s *Shared) queue(w write) bool {
	if !s.up.Load() {
		return false
	}
	select {
	case s.writes <- w:
		return true
	default:
		s.metrics.dropped.Inc()
		return false
	}
}

func (s *Shared) writer(ctx context.Context) {
	defer close(s.writerDone)
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-s.writes:
			wctx, cancel := context.WithTimeout(ctx, ioTimeout)
			if err := w(wctx, s.client); err != nil {
				s.metrics.dropped.Inc()
			}
			cancel()
		}
	}
}
