// Package affinitytest checks that an implementation of affinity.Index or affinity.Items keeps their contract, so
// that a shared implementation (Redis) is tested by the same cases as the in-memory one.
package affinitytest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/affinity"
)

// Index checks an empty index: lookups of unknown ids, record, re-record (the newest region wins), forget, and that
// ids which are not valid are never recorded.
func Index(t *testing.T, ix affinity.Index) {
	t.Helper()
	ctx := context.Background()
	if _, ok, err := ix.Lookup(ctx, "resp_unknown"); ok || err != nil {
		t.Fatalf("unknown id: ok %v, err %v", ok, err)
	}
	for id, region := range map[string]string{"resp_1": "eastus", "file-2": "westus", "ftjob-3": "eastus"} {
		if err := ix.Record(ctx, id, region); err != nil {
			t.Fatalf("Record(%s): %v", id, err)
		}
	}
	if r, ok, err := ix.Lookup(ctx, "file-2"); !ok || r != "westus" || err != nil {
		t.Errorf("file-2: %q %v %v", r, ok, err)
	}
	ix.Record(ctx, "file-2", "swedencentral")
	if r, _, _ := ix.Lookup(ctx, "file-2"); r != "swedencentral" {
		t.Errorf("re-recorded file-2: %q", r)
	}
	if err := ix.Forget(ctx, "resp_1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ix.Lookup(ctx, "resp_1"); ok {
		t.Error("resp_1 is still known after Forget")
	}
	for _, bad := range []string{"", strings.Repeat("a", affinity.MaxIDLength+1), "a b", "../x", "id\n"} {
		ix.Record(ctx, bad, "eastus")
		if _, ok, _ := ix.Lookup(ctx, bad); ok {
			t.Errorf("invalid id %q was recorded", bad)
		}
	}
}

// Items checks an empty store whose clock is *now (the caller moves it): put, get, overwrite, expiry, delete.
func Items(t *testing.T, it affinity.Items, now *time.Time) {
	t.Helper()
	ctx := context.Background()
	if _, ok, err := it.Get(ctx, "resp_x"); ok || err != nil {
		t.Fatalf("unknown id: %v %v", ok, err)
	}
	it.Put(ctx, "resp_a", []byte(`[{"type":"message"}]`), time.Minute)
	if b, ok, err := it.Get(ctx, "resp_a"); !ok || err != nil || string(b) != `[{"type":"message"}]` {
		t.Errorf("resp_a: %s %v %v", b, ok, err)
	}
	it.Put(ctx, "resp_a", []byte(`[1]`), time.Minute)
	if b, _, _ := it.Get(ctx, "resp_a"); string(b) != `[1]` {
		t.Errorf("overwritten resp_a: %s", b)
	}
	*now = now.Add(2 * time.Minute)
	if _, ok, _ := it.Get(ctx, "resp_a"); ok {
		t.Error("resp_a outlived its ttl")
	}
	it.Put(ctx, "resp_b", []byte(`[2]`), time.Minute)
	it.Delete(ctx, "resp_b")
	if _, ok, _ := it.Get(ctx, "resp_b"); ok {
		t.Error("resp_b outlived Delete")
	}
}
