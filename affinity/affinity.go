// Package affinity remembers where stored objects live. Azure OpenAI keeps responses, conversations, files,
// batches, fine-tuning jobs and vector stores in the region that created them, so a gateway in front of several
// regions must send every request that names such an object to that region (SPEC.md section 10). Index maps an
// object's id to its region; Items keeps the items of stored responses for rebuilding a conversation in another
// region (responses.rebuild). Both are small interfaces with bounded in-memory implementations here; a shared
// implementation (Redis, for several replicas) satisfies the same contract, checked by package affinitytest.
package affinity

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/lifeline-sre/lifeline/failover"
)

// Index maps stored-object ids to the region that holds them.
type Index interface {
	// Lookup returns the region that holds id, and whether it is known.
	Lookup(ctx context.Context, id string) (region string, ok bool, err error)
	// Record notes that region holds id.
	Record(ctx context.Context, id, region string) error
	// Forget drops id (the object was deleted).
	Forget(ctx context.Context, id string) error
}

// MaxIDLength bounds the ids an Index accepts: longer ones are not Azure ids and are never recorded.
const MaxIDLength = failover.MaxObjectIDLength

// ValidID reports whether id looks like a stored-object id: the request model's rule (failover.ValidObjectID),
// 1 to MaxIDLength letters, digits, '-', '_', '.' or ':'.
func ValidID(id string) bool { return failover.ValidObjectID(id) }

// MemoryIndex is an Index in memory that keeps at most a fixed number of ids, forgetting the least recently used
// first. A forgotten id is found again by asking the regions, so the bound costs a lookup, never a wrong answer.
type MemoryIndex struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front: most recently used
	byID  map[string]*list.Element
	names map[string]string // region names interned: one string per region, whatever the number of ids
}

type indexEntry struct{ id, region string }

// DefaultIndexSize is the number of ids a MemoryIndex keeps when NewMemoryIndex is given 0: about 25 MB at most.
const DefaultIndexSize = 100_000

// NewMemoryIndex returns an index of at most max ids (0: DefaultIndexSize).
func NewMemoryIndex(max int) *MemoryIndex {
	if max <= 0 {
		max = DefaultIndexSize
	}
	return &MemoryIndex{max: max, ll: list.New(), byID: map[string]*list.Element{}, names: map[string]string{}}
}

// Lookup implements Index.
func (m *MemoryIndex) Lookup(_ context.Context, id string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byID[id]
	if !ok {
		return "", false, nil
	}
	m.ll.MoveToFront(e)
	return e.Value.(*indexEntry).region, true, nil
}

// Record implements Index. Ids that are not ValidID are ignored.
func (m *MemoryIndex) Record(_ context.Context, id, region string) error {
	if !ValidID(id) || region == "" {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.names[region]
	if !ok {
		name = region
		m.names[region] = region
	}
	if e, ok := m.byID[id]; ok {
		e.Value.(*indexEntry).region = name
		m.ll.MoveToFront(e)
		return nil
	}
	m.byID[id] = m.ll.PushFront(&indexEntry{id: id, region: name})
	for m.ll.Len() > m.max {
		old := m.ll.Back()
		m.ll.Remove(old)
		delete(m.byID, old.Value.(*indexEntry).id)
	}
	return nil
}

// Forget implements Index.
func (m *MemoryIndex) Forget(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[id]; ok {
		m.ll.Remove(e)
		delete(m.byID, id)
	}
	return nil
}

// Len is the number of ids held.
func (m *MemoryIndex) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ll.Len()
}

// Items keeps, per stored response, the items of its conversation (input and output items, oldest first, as a
// JSON array), so that a follow-up can be rebuilt in another region when the response's region is down.
type Items interface {
	// Put keeps items for id until ttl has passed.
	Put(ctx context.Context, id string, items []byte, ttl time.Duration) error
	// Get returns the items of id, if kept and not expired.
	Get(ctx context.Context, id string) ([]byte, bool, error)
	// Delete drops the items of id.
	Delete(ctx context.Context, id string) error
}

// MemoryItems is Items in memory, bounded by the total bytes held: when a Put would exceed it, the oldest entries
// are dropped first (expired ones always).
type MemoryItems struct {
	mu    sync.Mutex
	max   int64
	size  int64
	byID  map[string]*itemsEntry
	now   func() time.Time
	order list.List // by insertion; expiry is the same order for one ttl
}

type itemsEntry struct {
	id      string
	items   []byte
	expires time.Time
	el      *list.Element
}

// DefaultItemsBytes is the bound of a MemoryItems given 0: 256 MiB.
const DefaultItemsBytes = 256 << 20

// NewMemoryItems returns a store of at most maxBytes of items (0: DefaultItemsBytes); now is its clock (nil:
// time.Now).
func NewMemoryItems(maxBytes int64, now func() time.Time) *MemoryItems {
	if maxBytes <= 0 {
		maxBytes = DefaultItemsBytes
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryItems{max: maxBytes, byID: map[string]*itemsEntry{}, now: now}
}

// Put implements Items. Items larger than the whole bound are not kept.
func (m *MemoryItems) Put(_ context.Context, id string, items []byte, ttl time.Duration) error {
	if !ValidID(id) || int64(len(items)) > m.max {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked(id)
	now := m.now()
	for e := m.order.Front(); e != nil && (m.size+int64(len(items)) > m.max || e.Value.(*itemsEntry).expires.Before(now)); {
		next := e.Next()
		m.dropLocked(e.Value.(*itemsEntry).id)
		e = next
	}
	en := &itemsEntry{id: id, items: append([]byte(nil), items...), expires: now.Add(ttl)}
	en.el = m.order.PushBack(en)
	m.byID[id] = en
	m.size += int64(len(items))
	return nil
}

func (m *MemoryItems) dropLocked(id string) {
	if en, ok := m.byID[id]; ok {
		m.order.Remove(en.el)
		delete(m.byID, id)
		m.size -= int64(len(en.items))
	}
}

// Get implements Items.
func (m *MemoryItems) Get(_ context.Context, id string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	en, ok := m.byID[id]
	if !ok {
		return nil, false, nil
	}
	if !m.now().Before(en.expires) {
		m.dropLocked(id)
		return nil, false, nil
	}
	return en.items, true, nil
}

// Delete implements Items.
func (m *MemoryItems) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked(id)
	return nil
}

// Size is the bytes of items held.
func (m *MemoryItems) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}
