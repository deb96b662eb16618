package affinity_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/affinity"
	"github.com/lifeline-sre/lifeline/affinity/affinitytest"
)

func TestMemoryIndexContract(t *testing.T) { affinitytest.Index(t, affinity.NewMemoryIndex(0)) }

func TestMemoryItemsContract(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	affinitytest.Items(t, affinity.NewMemoryItems(0, func() time.Time { return now }), &now)
}

func TestMemoryIndexBound(t *testing.T) {
	ctx := context.Background()
	ix := affinity.NewMemoryIndex(3)
	for i := range 5 {
		ix.Record(ctx, fmt.Sprintf("file-%d", i), "eastus")
		if i == 2 {
			ix.Lookup(ctx, "file-0") // used: kept over file-1
		}
	}
	if ix.Len() != 3 {
		t.Fatalf("len %d, want 3", ix.Len())
	}
	for id, want := range map[string]bool{"file-0": true, "file-1": false, "file-2": false, "file-3": true, "file-4": true} {
		if _, ok, _ := ix.Lookup(ctx, id); ok != want {
			t.Errorf("%s kept %v, want %v", id, ok, want)
		}
	}
}

func TestMemoryItemsBound(t *testing.T) {
	ctx := context.Background()
	it := affinity.NewMemoryItems(10, nil)
	it.Put(ctx, "resp_a", []byte("12345"), time.Hour)
	it.Put(ctx, "resp_b", []byte("12345"), time.Hour)
	it.Put(ctx, "resp_c", []byte("123"), time.Hour) // drops resp_a, the oldest
	if _, ok, _ := it.Get(ctx, "resp_a"); ok {
		t.Error("resp_a kept past the bound")
	}
	if _, ok, _ := it.Get(ctx, "resp_c"); !ok || it.Size() != 8 {
		t.Errorf("resp_c: %v, size %d", ok, it.Size())
	}
	it.Put(ctx, "resp_big", make([]byte, 11), time.Hour)
	if _, ok, _ := it.Get(ctx, "resp_big"); ok {
		t.Error("items larger than the bound were kept")
	}
}

func BenchmarkMemoryIndex(b *testing.B) {
	ctx := context.Background()
	ix := affinity.NewMemoryIndex(1000)
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("resp_%048d", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := ids[i%len(ids)]
		if _, ok, _ := ix.Lookup(ctx, id); !ok {
			ix.Record(ctx, id, "eastus")
		}
	}
}
