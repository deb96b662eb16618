package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
)

// Engine is what shared state drives in this replica and reads from it. *failover.Transport implements it.
type Engine interface {
	Disable(region string) error
	Enable(region string) error
	// ApplyCoolDown cools a deployment of a region down until a time learned from another replica.
	ApplyCoolDown(region, deployment string, until time.Time) error
	// ApplyRegionEvent applies a trip (open until a time) or a recovery learned from another replica.
	ApplyRegionEvent(region string, ev failover.RegionEvent) error
	Regions() []failover.RegionStatus
}

// Options are a Shared's settings and hooks. Only Config.Redis is required.
type Options struct {
	// Config is the `state` section; Config.Redis must be set.
	Config config.State
	// Logger gets one line per change of the backend's state, never one per request. Nil: slog.Default().
	Logger *slog.Logger
	// Registerer gets lifeline_state_backend_up and the event counters. Nil: none.
	Registerer prometheus.Registerer
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// OnApply, when set, is called after an event from another replica has been applied here (the staleness
	// benchmark times it).
	OnApply func(Event)
}

// Shared keeps one replica's view of the regions in step with the other replicas' through Redis. Requests never
// wait on it: local changes are queued and written by a background loop, remote ones arrive by pub/sub and by a
// periodic full read, and while Redis is unreachable the replica goes on with what it has.
type Shared struct {
	opts     Options
	client   redis.UniversalClient
	replica  string
	events   string // hash: event key -> event JSON
	channel  string // pub/sub channel of events
	replicas string // hash: replica name -> heartbeat JSON
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger
	metrics  *metrics

	engine atomic.Pointer[engineBox]

	mu      sync.Mutex
	known   map[string]Event // the latest event of each key, local or learned
	pending map[string]Event // local events not yet written
	trips   []failover.StateChange
	peers   []ReplicaView
	lastOK  time.Time
	lastErr string

	wake       chan struct{}
	writes     chan write    // background writes of the shared index and items (affinity.go)
	writerDone chan struct{} // closed when the writer ends
	up         atomic.Bool
	everUp     atomic.Bool
	upSince    atomic.Int64
	stop       context.CancelFunc
	done       chan struct{}
	stopOnce   sync.Once
}

type engineBox struct{ e Engine }

// New makes a Shared for o.Config.Redis. It connects nothing until Start.
func New(o Options) (*Shared, error) {
	if o.Config.Redis == nil {
		return nil, errors.New("state: no state.redis in the config")
	}
	client, err := NewClient(o.Config.Redis)
	if err != nil {
		return nil, err
	}
	s := &Shared{opts: o, client: client, now: o.Now, log: o.Logger, wake: make(chan struct{}, 1), done: make(chan struct{}),
		writes: make(chan write, writeQueue), writerDone: make(chan struct{}), known: map[string]Event{}, pending: map[string]Event{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.replica = o.Config.Replica
	if s.replica == "" {
		s.replica, _ = os.Hostname()
	}
	if s.replica == "" {
		s.replica = fmt.Sprintf("pid-%d", os.Getpid())
	}
	prefix := o.Config.Redis.KeyPrefix
	if prefix == "" {
		prefix = config.DefaultKeyPrefix
	}
	s.events, s.channel, s.replicas = prefix+"events", prefix+"events", prefix+"replicas"
	s.interval = o.Config.SyncInterval.D()
	if s.interval <= 0 {
		s.interval = config.DefaultSyncInterval
	}
	if s.metrics, err = newMetrics(o.Registerer); err != nil {
		return nil, err
	}
	return s, nil
}

// Replica is this replica's name in the shared view.
func (s *Shared) Replica() string { return s.replica }

// Client is the Redis client, for other shared stores (the stored-object index) to use the same connections.
func (s *Shared) Client() redis.UniversalClient { return s.client }

// KeyPrefix starts every key this replica uses.
func (s *Shared) KeyPrefix() string { return s.opts.Config.Redis.KeyPrefix }

// Up reports whether the last exchange with Redis succeeded.
func (s *Shared) Up() bool { return s.up.Load() }

// Start begins sharing with e as this replica's engine. It returns at once; the first contact with Redis happens
// in the background.
func (s *Shared) Start(e Engine) {
	s.engine.Store(&engineBox{e})
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.run(ctx)
	go s.writer(ctx)
}

// Close stops the background loop, removes this replica from the shared view (best effort) and closes the client.
func (s *Shared) Close() {
	s.stopOnce.Do(func() {
		if s.stop != nil {
			s.stop()
			<-s.done
			<-s.writerDone
		}
		if s.up.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			s.client.HDel(ctx, s.replicas, s.replica)
			cancel()
		}
		s.client.Close()
	})
}

func (s *Shared) eng() Engine {
	if b := s.engine.Load(); b != nil {
		return b.e
	}
	return nil
}

// Switch disables or enables a region by hand, here at once and on every replica through Redis. by and reason
// are kept with the switch until the next one.
func (s *Shared) Switch(region string, disabled bool, by, reason string) error {
	e := s.eng()
	if e == nil {
		return errors.New("state: not started")
	}
	var err error
	if disabled {
		err = e.Disable(region)
	} else {
		err = e.Enable(region)
	}
	if err != nil {
		return err
	}
	s.local(Event{Kind: KindSwitch, Region: region, Disabled: disabled, By: by, Reason: reason, At: s.now()})
	return nil
}

// local records an event that happened here and queues it for Redis.
func (s *Shared) local(ev Event) {
	ev.Origin = s.replica
	ev = ev.withRank()
	s.mu.Lock()
	if cur, ok := s.known[ev.Key()]; ok && cur.Rank >= ev.Rank {
		ev.Rank = cur.Rank + 1 // two changes within a microsecond: the later still wins
	}
	s.known[ev.Key()] = ev
	s.pending[ev.Key()] = ev
	s.mu.Unlock()
	s.metrics.published.WithLabelValues(string(ev.Kind)).Inc()
	s.poke()
}

func (s *Shared) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Switches returns the manual switch in force for each region that has one (who, why, when, from which replica).
func (s *Shared) Switches() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.known {
		if e.Kind == KindSwitch {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Region < out[j].Region })
	return out
}

func (s *Shared) run(ctx context.Context) {
	defer close(s.done)
	ps := s.client.Subscribe(ctx, s.channel)
	defer ps.Close()
	msgs := ps.Channel(redis.WithChannelSize(1024), redis.WithChannelHealthCheckInterval(s.interval))
	// The full read runs a little less than one interval after the last one began: less twice the time the last
	// exchange took, and at least a tenth of the interval (scheduling on a loaded host). A change whose message
	// was lost is then applied within one interval of being written, read included (it may land just after one
	// read's snapshot and must be applied by the next).
	tick := time.NewTimer(s.interval)
	defer tick.Stop()
	next := func(took time.Duration) time.Duration {
		return max(s.interval-max(2*took, s.interval/10), s.interval/2)
	}
	began := time.Now()
	s.sync(ctx)
	tick.Reset(next(time.Since(began)) - time.Since(began))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			s.receive([]byte(m.Payload), "pubsub")
		case <-s.wake:
			s.scanLocal()
			if s.up.Load() {
				if err := s.flush(ctx); err != nil {
					s.markDown(err)
				}
			}
		case <-tick.C:
			began := time.Now()
			s.scanLocal()
			s.sync(ctx)
			tick.Reset(max(next(time.Since(began))-time.Since(began), 0))
		}
	}
}

// sync is the periodic exchange: write what is pending (everything in force after an outage), read every event
// and every replica's heartbeat, and write this replica's.
func (s *Shared) sync(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 3*ioTimeout)
	defer cancel()
	if !s.up.Load() {
		if err := s.client.Ping(ctx).Err(); err != nil {
			s.markDown(err)
			return
		}
		s.republish()
	}
	err := s.flush(ctx)
	if err == nil {
		err = s.readAll(ctx)
	}
	if err == nil {
		err = s.heartbeat(ctx)
	}
	if err != nil {
		s.markDown(err)
		return
	}
	s.markUp()
}

// republish queues every event this replica holds that is still in force, after an outage or at the start: a
// Redis that lost its data gets it back, and the script keeps a newer change from being undone.
func (s *Shared) republish() {
	now := s.now()
	s.mu.Lock()
	for k, e := range s.known {
		if e.InForce(now) {
			s.pending[k] = e
		}
	}
	s.mu.Unlock()
}

func (s *Shared) flush(ctx context.Context) error {
	s.mu.Lock()
	batch := make([]Event, 0, len(s.pending))
	for _, e := range s.pending {
		batch = append(batch, e)
	}
	clear(s.pending)
	s.mu.Unlock()
	for i, e := range batch {
		b, _ := json.Marshal(e)
		err := putScript.Run(ctx, s.client, []string{s.events}, e.Key(), b, e.Rank, s.channel).Err()
		if err != nil {
			s.mu.Lock()
			for _, p := range batch[i:] { // keep what was not written, unless something newer came meanwhile
				if cur, ok := s.pending[p.Key()]; !ok || cur.Rank < p.Rank {
					s.pending[p.Key()] = p
				}
			}
			s.mu.Unlock()
			return fmt.Errorf("write %s: %w", e.Key(), err)
		}
	}
	return nil
}

// readAll reads every stored event: what pub/sub lost arrives this way, within one interval.
func (s *Shared) readAll(ctx context.Context) error {
	all, err := s.client.HGetAll(ctx, s.events).Result()
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	now := s.now()
	for field, v := range all {
		ev, err := decodeEvent([]byte(v), now)
		if err == nil && !ev.InForce(now.Add(-time.Minute)) {
			// Long over: tidy it away, unless it changed since it was read.
			dropScript.Run(ctx, s.client, []string{s.events}, field, v)
			continue
		}
		s.receive([]byte(v), "read")
	}
	return nil
}

// receive applies an event from Redis if it is newer than what this replica knows.
func (s *Shared) receive(b []byte, via string) {
	now := s.now()
	ev, err := decodeEvent(b, now)
	if err != nil {
		s.metrics.rejected.Inc()
		return
	}
	k := ev.Key()
	s.mu.Lock()
	if cur, ok := s.known[k]; ok && cur.Rank >= ev.Rank {
		s.mu.Unlock()
		return
	}
	s.known[k] = ev
	if p, ok := s.pending[k]; ok && p.Rank < ev.Rank {
		delete(s.pending, k) // superseded before it was written
	}
	s.mu.Unlock()
	if !ev.InForce(now) {
		return
	}
	s.apply(ev)
	s.metrics.applied.WithLabelValues(string(ev.Kind), via).Inc()
	if s.opts.OnApply != nil {
		s.opts.OnApply(ev)
	}
}

// apply makes this replica act on an event from another one.
func (s *Shared) apply(ev Event) {
	e := s.eng()
	if e == nil {
		return
	}
	var err error
	switch ev.Kind {
	case KindSwitch:
		if ev.Disabled {
			err = e.Disable(ev.Region)
		} else {
			err = e.Enable(ev.Region)
		}
	case KindCool:
		err = e.ApplyCoolDown(ev.Region, ev.Deployment, ev.Until)
	case KindTrip:
		re := failover.RegionEvent{State: failover.Healthy, Reason: ev.Reason}
		if ev.State == TripOpen {
			re = failover.RegionEvent{State: failover.Open, Until: ev.Until, Reason: ev.Reason}
		}
		err = e.ApplyRegionEvent(ev.Region, re)
	}
	if err != nil && !errors.Is(err, failover.ErrUnknownRegion) && !errors.Is(err, failover.ErrUnknownDeployment) {
		s.log.Debug("shared event not applied", "kind", ev.Kind, "region", ev.Region, "error", err.Error())
	}
}

func (s *Shared) markDown(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
	first := s.upSince.Load() == 0 // the first failure is told even if Redis was never up
	if s.up.Swap(false) || first {
		s.upSince.Store(-1)
		s.metrics.up.Set(0)
		s.log.Warn("state backend (Redis) unreachable; serving on this replica's own state until it returns",
			"replica", s.replica, "error", err.Error())
	}
}

func (s *Shared) markUp() {
	s.mu.Lock()
	s.lastOK = s.now()
	s.lastErr = ""
	s.mu.Unlock()
	if !s.up.Swap(true) {
		s.everUp.Store(true)
		s.upSince.Store(s.now().UnixNano())
		s.metrics.up.Set(1)
		s.log.Info("state backend (Redis) reachable; shared state in step", "replica", s.replica)
	}
}
