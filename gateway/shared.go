package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
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
