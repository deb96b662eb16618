package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/state"
)

// newShared makes the shared state of state.redis (nil without it). It starts nothing: New starts it once the
// engine exists.
func newShared(cfg *config.Config, opts Options, log *slog.Logger, reg prometheus.Registerer) (*state.Shared, error) {
	if cfg.State.Redis == nil {
		return nil, nil
	}
	return state.New(state.Options{Config: cfg.State, Logger: log, Registerer: reg, Now: opts.Now, OnApply: opts.OnSharedEvent})
}

// Shared is the state shared with other replicas through Redis, or nil without state.redis.
func (g *Gateway) Shared() *state.Shared { return g.shared }

// switchNote is who switched a region by hand and why: from a JSON body {"by": ..., "reason": ...} or the query
// parameters by and reason. Each is cut to 200 bytes.
type switchNote struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
}

const maxNote = 200

func readSwitchNote(r *http.Request) switchNote {
	var n switchNote
	if r.Body != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&n) // a note is optional: a bad one is ignored
	}
	if n.By == "" {
		n.By = r.URL.Query().Get("by")
	}
	if n.Reason == "" {
		n.Reason = r.URL.Query().Get("reason")
	}
	if n.By == "" {
		n.By = "admin API from " + r.RemoteAddr
	}
	n.By, n.Reason = clip(n.By), clip(n.Reason)
	return n
}

func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1 // no control characters in logs and the status page
		}
		return r
	}, s)
	if len(s) > maxNote {
		s = s[:maxNote]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// SwitchView is the manual switch in force for a region: a disable or an enable, who did it, why, when and on
// which replica (Replica is set with state.redis only).
type SwitchView struct {
	Disabled bool      `json:"disabled"`
	By       string    `json:"by"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	Replica  string    `json:"replica,omitempty"`
}

// describe says in words who disabled the region, where and why, for the status page. self is this replica's name
// ("" without state.redis): a switch made here does not name the replica.
func (s *SwitchView) describe(region, self string) string {
	b := "disabled by hand: by " + s.By
	if s.Replica != "" && s.Replica != self {
		b += " on replica " + s.Replica
	}
	b += " at " + s.At.UTC().Format("15:04:05") + " UTC"
	if s.Reason != "" {
		b += ", because: " + s.Reason
	}
	return b + " (POST /admin/regions/" + region + "/enable brings it back)"
}

// switchNotes keeps the last manual switch of each region when there is no shared state to keep it.
type switchNotes struct {
	mu sync.Mutex
	m  map[string]SwitchView
}

func (n *switchNotes) set(region string, v SwitchView) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]SwitchView{}
	}
	n.m[region] = v
}

// switchViews returns the switch in force for each region that has one: the shared ones with state.redis (made
// on any replica), else those made on this gateway.
func (g *Gateway) switchViews() map[string]*SwitchView {
	out := map[string]*SwitchView{}
	if g.shared != nil {
		for _, e := range g.shared.Switches() {
			out[e.Region] = &SwitchView{Disabled: e.Disabled, By: e.By, Reason: e.Reason, At: e.At.UTC(), Replica: e.Origin}
		}
		return out
	}
	g.switches.mu.Lock()
	defer g.switches.mu.Unlock()
	for r, v := range g.switches.m {
		out[r] = &v
	}
	return out
}

// replica is this replica's name with state.redis, else "".
func (g *Gateway) replica() string {
	if g.shared == nil {
		return ""
	}
	return g.shared.Replica()
}
