package state

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lifeline-sre/lifeline/affinity"
)

// Index returns an affinity.Index shared through Redis in front of local: lookups ask local first, and Redis only
// on a miss, only while Redis is up, for at most 50 ms (an id found there is remembered locally); records go to
// local at once and to Redis in the background, in order, and so does forgetting (an id forgotten here is not looked
// up in Redis for a minute, while the delete is on its way). Without Redis it is local alone.
func (s *Shared) Index(local affinity.Index) affinity.Index {
	return &sharedIndex{s: s, local: local, gone: newTombstones(s.now)}
}

type sharedIndex struct {
	s     *Shared
	local affinity.Index
	gone  *tombstones // forgotten here: not looked up in Redis while the delete may still be on its way
}

// tombstones remember ids deleted here for a minute, so that a lookup does not find them in Redis before the
// delete, queued behind earlier writes, has reached it.
type tombstones struct {
	mu  sync.Mutex
	at  map[string]time.Time
	now func() time.Time
}

const maxTombstones = 10000

func newTombstones(now func() time.Time) *tombstones {
	return &tombstones{at: map[string]time.Time{}, now: now}
}

func (g *tombstones) add(id string) {
	g.mu.Lock()
	if len(g.at) >= maxTombstones {
		clear(g.at) // a lost tombstone costs at most a stale answer that the region corrects
	}
	g.at[id] = g.now()
	g.mu.Unlock()
}

func (g *tombstones) remove(id string) {
	g.mu.Lock()
	delete(g.at, id)
	g.mu.Unlock()
}

func (g *tombstones) has(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.at[id]
	if ok && g.now().Sub(t) > time.Minute {
		delete(g.at, id)
		return false
	}
	return ok
}

func (x *sharedIndex) key(id string) string { return x.s.KeyPrefix() + "obj:" + id }

func (x *sharedIndex) Lookup(ctx context.Context, id string) (string, bool, error) {
	if r, ok, err := x.local.Lookup(ctx, id); ok || err != nil {
		return r, ok, err
	}
	if !affinity.ValidID(id) || !x.s.up.Load() || x.gone.has(id) {
		return "", false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	region, err := x.s.client.Get(ctx, x.key(id)).Result()
	if err != nil || region == "" || len(region) > 128 {
		return "", false, nil // not shared, or Redis slow: the caller asks the regions
	}
	x.local.Record(ctx, id, region)
	return region, true, nil
}

func (x *sharedIndex) Record(ctx context.Context, id, region string) error {
	if !affinity.ValidID(id) {
		return nil
	}
	if err := x.local.Record(ctx, id, region); err != nil {
		return err
	}
	x.gone.remove(id)
	k := x.key(id)
	x.s.queue(func(ctx context.Context, c redis.UniversalClient) error {
		return c.Set(ctx, k, region, objectTTL).Err()
	})
	return nil
}

func (x *sharedIndex) Forget(ctx context.Context, id string) error {
	if err := x.local.Forget(ctx, id); err != nil {
		return err
	}
	if !affinity.ValidID(id) {
		return nil
	}
	x.gone.add(id)
	k := x.key(id) // behind this replica's earlier writes of the same id
	x.s.queue(func(ctx context.Context, c redis.UniversalClient) error { return c.Del(ctx, k).Err() })
	return nil
}

// Items returns affinity.Items shared through Redis in front of local, with the same rules as Index. Each value
// in Redis carries its deadline, judged by now (nil: the Shared's clock), and expires in Redis too.
func (s *Shared) Items(local affinity.Items, now func() time.Time) affinity.Items {
	if now == nil {
		now = s.now
	}
	return &sharedItems{s: s, local: local, now: now, gone: newTombstones(s.now)}
}

type sharedItems struct {
	s     *Shared
	local affinity.Items
	now   func() time.Time
	gone  *tombstones
}

func (x *sharedItems) key(id string) string { return x.s.KeyPrefix() + "items:" + id }

func (x *sharedItems) Put(ctx context.Context, id string, items []byte, ttl time.Duration) error {
	if err := x.local.Put(ctx, id, items, ttl); err != nil {
		return err
	}
	x.gone.remove(id)
	if !affinity.ValidID(id) || len(items) > maxSharedItems || ttl <= 0 {
		return nil
	}
	v := make([]byte, 8+len(items))
	binary.BigEndian.PutUint64(v, uint64(x.now().Add(ttl).UnixNano()))
	copy(v[8:], items)
	k := x.key(id)
	x.s.queue(func(ctx context.Context, c redis.UniversalClient) error { return c.Set(ctx, k, v, ttl).Err() })
	return nil
}

func (x *sharedItems) Get(ctx context.Context, id string) ([]byte, bool, error) {
	if b, ok, err := x.local.Get(ctx, id); ok || err != nil {
		return b, ok, err
	}
	if !affinity.ValidID(id) || !x.s.up.Load() || x.gone.has(id) {
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	v, err := x.s.client.Get(ctx, x.key(id)).Bytes()
	if err != nil || len(v) < 8 || len(v) > 8+maxSharedItems {
		return nil, false, nil
	}
	until := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	if !x.now().Before(until) {
		return nil, false, nil
	}
	items := v[8:]
	x.local.Put(ctx, id, items, until.Sub(x.now()))
	return items, true, nil
}

func (x *sharedItems) Delete(ctx context.Context, id string) error {
	if err := x.local.Delete(ctx, id); err != nil {
		return err
	}
	if !affinity.ValidID(id) {
		return nil
	}
	x.gone.add(id)
	k := x.key(id)
	x.s.queue(func(ctx context.Context, c redis.UniversalClient) error { return c.Del(ctx, k).Err() })
	return nil
}
