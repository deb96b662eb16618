package state

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReplicaView is what one replica sees, as its last heartbeat told.
type ReplicaView struct {
	Name    string          `json:"name"`
	SeenAt  time.Time       `json:"seen_at"`
	Regions []ReplicaRegion `json:"regions"`
	Self    bool            `json:"self,omitempty"`
}

// ReplicaRegion is one region as one replica sees it.
type ReplicaRegion struct {
	Name      string     `json:"name"`
	State     string     `json:"state"`
	OpenUntil *time.Time `json:"open_until,omitempty"`
}

// View is the shared state as this replica sees it: for GET /admin/regions and the status page.
type View struct {
	Backend  string        `json:"backend"` // "redis"
	Up       bool          `json:"up"`      // the last exchange with Redis succeeded
	Replica  string        `json:"replica"` // this replica's name
	LastSync *time.Time    `json:"last_sync,omitempty"`
	Error    string        `json:"error,omitempty"` // why Redis is unreachable (no secrets: go-redis errors name the address at most)
	Replicas []ReplicaView `json:"replicas"`        // every replica with a recent heartbeat, this one included
	Switches []Event       `json:"switches"`        // manual switches in force, with who and why
}

// View returns the shared view.
func (s *Shared) View() View {
	v := View{Backend: "redis", Up: s.up.Load(), Replica: s.replica, Switches: s.Switches()}
	s.mu.Lock()
	if !s.lastOK.IsZero() {
		t := s.lastOK.UTC()
		v.LastSync = &t
	}
	v.Error = s.lastErr
	v.Replicas = append([]ReplicaView{}, s.peers...)
	s.mu.Unlock()
	if len(v.Replicas) == 0 || !v.Up {
		// Without Redis this replica knows only itself for sure.
		v.Replicas = []ReplicaView{s.self()}
	}
	if v.Switches == nil {
		v.Switches = []Event{}
	}
	return v
}

// self is this replica's own view.
func (s *Shared) self() ReplicaView {
	rv := ReplicaView{Name: s.replica, SeenAt: s.now().UTC(), Self: true, Regions: []ReplicaRegion{}}
	if e := s.eng(); e != nil {
		for _, r := range e.Regions() {
			rr := ReplicaRegion{Name: r.Name, State: r.State.String()}
			if !r.OpenUntil.IsZero() {
				t := r.OpenUntil.UTC()
				rr.OpenUntil = &t
			}
			rv.Regions = append(rv.Regions, rr)
		}
	}
	return rv
}

const maxHeartbeatBytes = 64 << 10

// heartbeat writes this replica's view and reads the others'. A replica silent for five intervals is dropped.
func (s *Shared) heartbeat(ctx context.Context) error {
	me := s.self()
	me.Self = false
	b, _ := json.Marshal(me)
	if err := s.client.HSet(ctx, s.replicas, s.replica, b).Err(); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	all, err := s.client.HGetAll(ctx, s.replicas).Result()
	if err != nil {
		return fmt.Errorf("read heartbeats: %w", err)
	}
	now := s.now()
	var peers []ReplicaView
	for name, v := range all {
		var rv ReplicaView
		if len(v) > maxHeartbeatBytes || json.Unmarshal([]byte(v), &rv) != nil || rv.Name != name {
			continue
		}
		if now.Sub(rv.SeenAt) > 5*s.interval {
			dropScript.Run(ctx, s.client, []string{s.replicas}, name, v)
			continue
		}
		rv.Self = name == s.replica
		peers = append(peers, rv)
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	s.mu.Lock()
	s.peers = peers
	s.mu.Unlock()
	return nil
}

type metrics struct {
	up        prometheus.Gauge
	published *prometheus.CounterVec
	applied   *prometheus.CounterVec
	rejected  prometheus.Counter
	dropped   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lifeline_state_backend_up",
			Help: "1 when the last exchange with the shared state backend (Redis) succeeded, else 0."}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_state_events_published_total",
			Help: "Events that happened on this replica and were queued for the other replicas, by kind."}, []string{"kind"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_state_events_applied_total",
			Help: "Events from other replicas applied here, by kind and by how they arrived (pubsub, read)."}, []string{"kind", "via"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_state_events_rejected_total",
			Help: "Events read from the backend that were malformed or out of bounds and ignored."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_state_writes_dropped_total",
			Help: "Background writes of the shared stored-object index and rebuild items that were dropped (queue full or Redis failing); the local copy stays."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.up, m.published, m.applied, m.rejected, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
