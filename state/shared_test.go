package state

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/lifeline-sre/lifeline/affinity"
	"github.com/lifeline-sre/lifeline/affinity/affinitytest"
	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/internal/redistest"
	"github.com/lifeline-sre/lifeline/internal/syncbuf"
)

// One redis-server for the whole package; each test has its own key prefix. Tests that kill it run alone.
var rdb *redistest.Server

func TestMain(m *testing.M) {
	var err error
	rdb, err = redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	rdb.Close()
	os.Exit(code)
}

// fakeEngine records what shared state makes it do, and reports the cool-downs a test sets.
type fakeEngine struct {
	mu       sync.Mutex
	regions  []string
	disabled map[string]bool
	cool     map[string]time.Time // region/deployment
	trips    map[string]failover.RegionEvent
	applied  atomic.Int64
}

func newFakeEngine(regions ...string) *fakeEngine {
	return &fakeEngine{regions: regions, disabled: map[string]bool{}, cool: map[string]time.Time{}, trips: map[string]failover.RegionEvent{}}
}

func (f *fakeEngine) known(region string) error {
	for _, r := range f.regions {
		if r == region {
			return nil
		}
	}
	return fmt.Errorf("%w %q", failover.ErrUnknownRegion, region)
}

func (f *fakeEngine) Disable(r string) error { return f.set(r, true) }
func (f *fakeEngine) Enable(r string) error  { return f.set(r, false) }

func (f *fakeEngine) set(r string, d bool) error {
	if err := f.known(r); err != nil {
		return err
	}
	f.mu.Lock()
	f.disabled[r] = d
	f.mu.Unlock()
	f.applied.Add(1)
	return nil
}

func (f *fakeEngine) ApplyCoolDown(r, dep string, until time.Time) error {
	if err := f.known(r); err != nil {
		return err
	}
	f.mu.Lock()
	if until.After(f.cool[r+"/"+dep]) {
		f.cool[r+"/"+dep] = until
	}
	f.mu.Unlock()
	f.applied.Add(1)
	return nil
}

func (f *fakeEngine) ApplyRegionEvent(r string, e failover.RegionEvent) error {
	if err := f.known(r); err != nil {
		return err
	}
	f.mu.Lock()
	f.trips[r] = e
	f.mu.Unlock()
	f.applied.Add(1)
	return nil
}

func (f *fakeEngine) Regions() []failover.RegionStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []failover.RegionStatus
	for _, r := range f.regions {
		rs := failover.RegionStatus{Name: r, State: failover.Healthy}
		if f.disabled[r] {
			rs.State = failover.Disabled
		}
		if e, ok := f.trips[r]; ok && e.State == failover.Open {
			rs.State, rs.OpenUntil = failover.Open, e.Until
		}
		rs.Deployments = []failover.DeploymentStatus{{Name: "gpt-4o", Deployment: "gpt-4o-prod", CoolingUntil: f.cool[r+"/gpt-4o-prod"]}}
		out = append(out, rs)
	}
	return out
}

func (f *fakeEngine) isDisabled(r string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.disabled[r]
}

func (f *fakeEngine) coolUntil(r string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cool[r+"/gpt-4o-prod"]
}

func (f *fakeEngine) trip(r string) (failover.RegionEvent, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.trips[r]
	return e, ok
}

// replica is one Shared with its engine, logs and metrics.
type replica struct {
	*Shared
	eng  *fakeEngine
	logs *syncbuf.Buffer
	reg  *prometheus.Registry
}

func startReplica(t *testing.T, prefix, name string, tweak ...func(*Options)) *replica {
	t.Helper()
	logs := &syncbuf.Buffer{}
	reg := prometheus.NewRegistry()
	o := Options{
		Config: config.State{Redis: &config.Redis{Addr: rdb.Addr, KeyPrefix: prefix}, Replica: name,
			SyncInterval: config.Duration(300 * time.Millisecond)},
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Registerer: reg,
	}
	for _, f := range tweak {
		f(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	eng := newFakeEngine("eastus", "westus")
	s.Start(eng)
	t.Cleanup(s.Close)
	r := &replica{Shared: s, eng: eng, logs: logs, reg: reg}
	eventually(t, name+" to reach Redis", 15*time.Second, s.Up)
	return r
}

func prefix(t *testing.T) string {
	return "test:" + strings.ReplaceAll(t.Name(), "/", ":") + ":"
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// TestSwitchReachesEveryReplica: a disable on one replica reaches the two others within a second (by pub/sub:
// far sooner), with who and why; an enable follows it.
func TestSwitchReachesEveryReplica(t *testing.T) {
	p := prefix(t)
	a, b, c := startReplica(t, p, "a"), startReplica(t, p, "b"), startReplica(t, p, "c")
	if err := a.Switch("eastus", true, "alice", "INC-42: eastus degraded"); err != nil {
		t.Fatal(err)
	}
	if !a.eng.isDisabled("eastus") {
		t.Fatal("the switch was not applied on the replica that took it")
	}
	for _, r := range []*replica{b, c} {
		d := eventually(t, "the disable on "+r.Replica(), time.Second, func() bool { return r.eng.isDisabled("eastus") })
		t.Logf("disable reached %s in %s", r.Replica(), d)
		sw := r.Switches()
		if len(sw) != 1 || sw[0].By != "alice" || sw[0].Reason != "INC-42: eastus degraded" || sw[0].Origin != "a" {
			t.Errorf("%s sees switches %+v", r.Replica(), sw)
		}
	}
	if err := c.Switch("eastus", false, "bob", "resolved"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*replica{a, b} {
		eventually(t, "the enable on "+r.Replica(), time.Second, func() bool { return !r.eng.isDisabled("eastus") })
	}
	if err := a.Switch("nowhere", true, "x", "y"); err == nil {
		t.Error("a switch of an unknown region succeeded")
	}
	eventually(t, "three replicas in the view", 3*time.Second, func() bool { return len(a.View().Replicas) == 3 })
	if v := b.View(); !v.Up || v.Replica != "b" || len(v.Switches) != 1 || v.Switches[0].Disabled {
		t.Errorf("view %+v", v)
	}
}

// TestCoolDownShared: a 429 cool-down learned on one replica is applied on the others with the same deadline,
// and not sent back.
func TestCoolDownShared(t *testing.T) {
	p := prefix(t)
	a, b := startReplica(t, p, "a"), startReplica(t, p, "b")
	until := time.Now().Add(7 * time.Second).Truncate(time.Microsecond)
	a.eng.mu.Lock()
	a.eng.cool["westus/gpt-4o-prod"] = until
	a.eng.mu.Unlock()
	a.Observer().AttemptFinished(failover.AttemptResult{Region: "westus", Outcome: failover.OutcomeThrottled})
	eventually(t, "the cool-down on b", time.Second, func() bool { return b.eng.coolUntil("westus").Equal(until) })
	time.Sleep(700 * time.Millisecond) // two sync intervals: nothing may bounce back
	if n := testutil.ToFloat64(b.metrics.published.WithLabelValues("cool")); n != 0 {
		t.Errorf("b published %v cool-downs it had learned from a", n)
	}
	if n := testutil.ToFloat64(a.metrics.published.WithLabelValues("cool")); n != 1 {
		t.Errorf("a published %v cool-downs, want 1", n)
	}
}

// TestTripShared: a trip on one replica reaches the others as "open until T because R"; the change it makes
// there (marked Shared) is not sent back; a recovery follows.
func TestTripShared(t *testing.T) {
	p := prefix(t)
	a, b := startReplica(t, p, "a"), startReplica(t, p, "b")
	until := time.Now().Add(30 * time.Second).Truncate(time.Microsecond)
	a.Observer().StateChanged(failover.StateChange{Region: "eastus", From: failover.Healthy, To: failover.Open,
		At: time.Now(), Until: until, Reason: "timeout"})
	eventually(t, "the trip on b", time.Second, func() bool {
		e, ok := b.eng.trip("eastus")
		return ok && e.State == failover.Open && e.Until.Equal(until) && e.Reason == "timeout"
	})
	// b's engine reports the applied trip as Shared: not published again.
	b.Observer().StateChanged(failover.StateChange{Region: "eastus", From: failover.Healthy, To: failover.Open, At: time.Now(), Until: until, Shared: true})
	a.Observer().StateChanged(failover.StateChange{Region: "eastus", From: failover.HalfOpen, To: failover.Healthy, At: time.Now(), Reason: "probe_ok"})
	eventually(t, "the recovery on b", time.Second, func() bool {
		e, _ := b.eng.trip("eastus")
		return e.State == failover.Healthy
	})
	if n := testutil.ToFloat64(b.metrics.published.WithLabelValues("trip")); n != 0 {
		t.Errorf("b published %v trips it had learned", n)
	}
}

// TestLostMessage: an event written without its pub/sub message (as if the message was lost) arrives by the
// periodic full read, within one sync interval, read included.
func TestLostMessage(t *testing.T) {
	p := prefix(t)
	b := startReplica(t, p, "b")
	ev := Event{Kind: KindSwitch, Region: "westus", Disabled: true, By: "ops", Reason: "lost", At: time.Now(), Origin: "z"}.withRank()
	raw := mustJSON(t, ev)
	c := redis.NewClient(&redis.Options{Addr: rdb.Addr})
	defer c.Close()
	written := time.Now()
	if err := c.HSet(context.Background(), p+"events", ev.Key(), raw).Err(); err != nil {
		t.Fatal(err)
	}
	d := eventually(t, "the unpublished event", 2*time.Second, func() bool { return b.eng.isDisabled("westus") })
	if d > 300*time.Millisecond+500*time.Millisecond {
		t.Errorf("took %s, more than one sync interval (300ms) and a generous margin", d)
	}
	t.Logf("read after %s (sync interval 300ms)", time.Since(written))
}

// TestGarbageFromRedis: malformed or out-of-bounds events are ignored and counted; the replica goes on.
func TestGarbageFromRedis(t *testing.T) {
	p := prefix(t)
	b := startReplica(t, p, "b")
	c := redis.NewClient(&redis.Options{Addr: rdb.Addr})
	defer c.Close()
	ctx := context.Background()
	far := Event{Kind: KindCool, Region: "eastus", Deployment: "d", Until: time.Now().Add(48 * time.Hour), At: time.Now(), Origin: "z"}.withRank()
	badRank := Event{Kind: KindSwitch, Region: "eastus", Disabled: true, At: time.Now(), Origin: "z", Rank: 1 << 60}
	for _, g := range []string{"{", `{"kind":"nuke","region":"eastus"}`, strings.Repeat("x", maxEventBytes+1),
		`{"kind":"switch"}`, string(mustJSON(t, far)), string(mustJSON(t, badRank))} {
		c.Publish(ctx, p+"events", g)
		c.HSet(ctx, p+"events", fmt.Sprintf("junk%d", len(g)), g)
	}
	eventually(t, "garbage to be counted", 2*time.Second, func() bool { return testutil.ToFloat64(b.metrics.rejected) >= 12 })
	if b.eng.isDisabled("eastus") || !b.eng.coolUntil("eastus").IsZero() || b.eng.applied.Load() != 0 {
		t.Error("garbage was applied")
	}
	if !b.Up() {
		t.Error("garbage took the backend down")
	}
}

// TestRedisOutage (not parallel: it kills the shared redis-server): with Redis gone, switches still apply at once
// on the replica that takes them, lifeline_state_backend_up is 0 and the outage is logged once; when an empty
// Redis returns, what each replica holds comes back (the latest change winning) and reaches the others, without
// a restart.
func TestRedisOutage(t *testing.T) {
	p := prefix(t)
	a, b := startReplica(t, p, "a"), startReplica(t, p, "b")
	if err := a.Switch("westus", true, "alice", "before the outage"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first switch on b", time.Second, func() bool { return b.eng.isDisabled("westus") })
	rdb.Kill()
	eventually(t, "a to see Redis down", 5*time.Second, func() bool { return !a.Up() })
	eventually(t, "b to see Redis down", 5*time.Second, func() bool { return !b.Up() })
	if v := testutil.ToFloat64(a.metrics.up); v != 0 {
		t.Errorf("lifeline_state_backend_up %v while Redis is down", v)
	}
	start := time.Now()
	if err := a.Switch("eastus", true, "alice", "during the outage"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 100*time.Millisecond || !a.eng.isDisabled("eastus") {
		t.Errorf("a switch during the outage took %s or was not applied", el)
	}
	if err := b.Switch("westus", false, "bob", "during the outage, later"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // several failed syncs: still one log line each
	if err := rdb.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a back", 5*time.Second, a.Up)
	eventually(t, "b back", 5*time.Second, b.Up)
	eventually(t, "a's outage switch on b", 2*time.Second, func() bool { return b.eng.isDisabled("eastus") })
	eventually(t, "b's later enable on a", 2*time.Second, func() bool { return !a.eng.isDisabled("westus") })
	for _, r := range []*replica{a, b} {
		logs := r.logs.String()
		if n := strings.Count(logs, "unreachable"); n != 1 {
			t.Errorf("%s logged the outage %d times:\n%s", r.Replica(), n, logs)
		}
		if n := strings.Count(logs, "reachable; shared state in step"); n != 2 { // at start, and after the outage
			t.Errorf("%s logged the recovery %d times", r.Replica(), n)
		}
		if v := testutil.ToFloat64(r.metrics.up); v != 1 {
			t.Errorf("%s: lifeline_state_backend_up %v after Redis returned", r.Replica(), v)
		}
	}
	// The restarted Redis holds the state again: a new replica learns it from there.
	c := startReplica(t, p, "c")
	eventually(t, "a new replica to learn the state", 2*time.Second, func() bool {
		return c.eng.isDisabled("eastus") && !c.eng.isDisabled("westus")
	})
}

// TestStartWithoutRedis: a replica whose Redis is not there starts at once, serves on local state, and logs
// the outage once.
func TestStartWithoutRedis(t *testing.T) {
	logs := &syncbuf.Buffer{}
	s, err := New(Options{Config: config.State{Redis: &config.Redis{Addr: deadAddr(t)}, Replica: "lonely",
		SyncInterval: config.Duration(100 * time.Millisecond)}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	eng := newFakeEngine("eastus")
	start := time.Now()
	s.Start(eng)
	defer s.Close()
	if err := s.Switch("eastus", true, "me", "no redis"); err != nil || !eng.isDisabled("eastus") {
		t.Fatalf("switch without Redis: %v", err)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("start and switch took %s", el)
	}
	eventually(t, "the outage to be logged", 5*time.Second, func() bool { return strings.Contains(logs.String(), "unreachable") })
	time.Sleep(600 * time.Millisecond) // several more failed syncs
	if n := strings.Count(logs.String(), "unreachable"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, logs.String())
	}
	if v := s.View(); v.Up || v.Error == "" || len(v.Replicas) != 1 || !v.Replicas[0].Self {
		t.Errorf("view without Redis: %+v", v)
	}
}

func mustJSON(t *testing.T, e Event) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deadAddr is an address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestSharedIndexContract: the shared index and items keep affinity's contract (the same cases as the in-memory
// ones), and what one replica records is found by another through Redis.
func TestSharedIndexContract(t *testing.T) {
	p := prefix(t)
	a, b := startReplica(t, p, "a"), startReplica(t, p, "b")
	affinitytest.Index(t, a.Index(affinity.NewMemoryIndex(100)))
	now := time.Now()
	clock := func() time.Time { return now }
	affinitytest.Items(t, a.Items(affinity.NewMemoryItems(1<<20, clock), clock), &now)

	ctx := context.Background()
	ia, ib := a.Index(affinity.NewMemoryIndex(100)), b.Index(affinity.NewMemoryIndex(100))
	ia.Record(ctx, "resp_shared", "westus")
	eventually(t, "b to find a's object", time.Second, func() bool {
		r, ok, _ := ib.Lookup(ctx, "resp_shared")
		return ok && r == "westus"
	})
	ia.Forget(ctx, "resp_shared")
	eventually(t, "the forgotten object to leave Redis", time.Second, func() bool {
		_, ok, _ := b.Index(affinity.NewMemoryIndex(100)).Lookup(ctx, "resp_shared") // a replica that had not seen it
		return !ok
	})
	xa := a.Items(affinity.NewMemoryItems(1<<20, nil), nil)
	xb := b.Items(affinity.NewMemoryItems(1<<20, nil), nil)
	xa.Put(ctx, "resp_items", []byte(`[{"role":"user"}]`), time.Minute)
	eventually(t, "b to find a's items", time.Second, func() bool {
		v, ok, _ := xb.Get(ctx, "resp_items")
		return ok && string(v) == `[{"role":"user"}]`
	})
}

// TestSharedIndexWithoutRedis: with Redis gone the index answers from local state at once.
func TestSharedIndexWithoutRedis(t *testing.T) {
	s, err := New(Options{Config: config.State{Redis: &config.Redis{Addr: deadAddr(t)}, Replica: "x"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(newFakeEngine("eastus"))
	defer s.Close()
	ix := s.Index(affinity.NewMemoryIndex(10))
	ctx := context.Background()
	start := time.Now()
	ix.Record(ctx, "file-1", "eastus")
	if r, ok, _ := ix.Lookup(ctx, "file-1"); !ok || r != "eastus" {
		t.Errorf("local lookup: %q %v", r, ok)
	}
	if _, ok, _ := ix.Lookup(ctx, "file-2"); ok {
		t.Error("unknown id found")
	}
	ix.Forget(ctx, "file-1")
	if el := time.Since(start); el > 50*time.Millisecond {
		t.Errorf("the index waited %s on a Redis that is not there", el)
	}
}
