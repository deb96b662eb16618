package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/state"
)

// AdminHandler returns the operator handler: /healthz, /readyz and /metrics are open; /status and /admin/* need
// the admin key (docs/gateway.md).
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.serveReady)
	mux.Handle("GET /metrics", g.metrics.handler())
	mux.HandleFunc("GET /status", g.serveStatus)
	mux.HandleFunc("GET /status.js", serveStatusJS)
	mux.HandleFunc("GET /admin/regions", g.admin(g.serveRegions))
	mux.HandleFunc("GET /admin/regions/{name}", g.admin(g.serveRegion))
	mux.HandleFunc("GET /admin/history", g.admin(g.serveHistory))
	mux.HandleFunc("POST /admin/regions/{name}/disable", g.admin(g.serveDisable))
	mux.HandleFunc("POST /admin/regions/{name}/enable", g.admin(g.serveEnable))
	mux.HandleFunc("POST /admin/reload", g.admin(g.serveReload))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "404", "no such admin route; see /status, /admin/regions, /healthz, /readyz, /metrics")
	})
	return mux
}

// admin guards h with the admin key.
func (g *Gateway) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gen := g.state.Load()
		if gen.adminKey == nil {
			writeJSONError(w, http.StatusForbidden, "admin_disabled", "the admin API is off: set admin.key in the config")
			return
		}
		if !gen.adminAllowed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lifeline admin"`)
			writeJSONError(w, http.StatusUnauthorized, "invalid_admin_key", "send the admin key as Authorization: Bearer KEY or x-admin-key: KEY")
			return
		}
		h(w, r)
	}
}

func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	draining := g.draining.Load() || g.hardCtx.Err() != nil
	ready := !draining && g.transport.Ready()
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]bool{"ready": ready, "draining": draining})
}

// RegionView is one region in GET /admin/regions.
type RegionView struct {
	Name      string  `json:"name"`
	Endpoint  string  `json:"endpoint"`
	State     string  `json:"state"`
	StateCode int     `json:"state_code"` // the value of lifeline_region_state
	Priority  int     `json:"priority"`
	Weight    int     `json:"weight"`
	ErrorRate float64 `json:"error_rate"`
	Attempts  int     `json:"attempts"`
	LatencyMS float64 `json:"latency_ms"`
	InFlight  int     `json:"in_flight"`
	// RealtimeSessions are the open Realtime (WebSocket) sessions the region serves.
	RealtimeSessions int        `json:"realtime_sessions"`
	Share            float64    `json:"share"`
	Ramp             float64    `json:"ramp"`
	OpenUntil        *time.Time `json:"open_until,omitempty"`
	Trips            int        `json:"trips"`
	// Degraded is set when a healthy region is on its way out; DegradedReasons says why (errors, slow).
	Degraded        bool     `json:"degraded"`
	DegradedReasons []string `json:"degraded_reasons,omitempty"`
	// Display is the state people see: healthy, degraded, throttled (every deployment cooling down after 429),
	// no_token (an Entra ID region without a valid token: Entra says why), half_open, open or disabled. Reason says in words what put the region there; StateReason is the engine's
	// word for it (an outcome such as timeout, or failure_rate, probe_ok, manual, shared...).
	Display     string     `json:"display_state"`
	Reason      string     `json:"reason,omitempty"`
	StateReason string     `json:"state_reason,omitempty"`
	StateSince  *time.Time `json:"state_since,omitempty"`
	// NextProbe is when the next active probe goes (policy.breaker.probe_interval), while the region is out of
	// service; OpenUntil is when a client request may be its trial. LastProbe is the last active probe's result.
	NextProbe *time.Time `json:"next_probe,omitempty"`
	LastProbe *ProbeView `json:"last_probe,omitempty"`
	// Switch is the manual switch in force for the region (disable or enable, who, why, when and, with
	// state.redis, on which replica); nil when nobody switched it since the gateway started.
	Switch      *SwitchView      `json:"switch,omitempty"`
	Last15m     Recent           `json:"last_15m"`
	Deployments []DeploymentView `json:"deployments"`
	Entra       *EntraView       `json:"entra,omitempty"` // nil for an API-key region
}

// ProbeView is the last active probe of a region.
type ProbeView struct {
	At        time.Time `json:"at"`
	Outcome   string    `json:"outcome"` // ok, or what failed (timeout, connect_error, server_error...)
	LatencyMS float64   `json:"latency_ms"`
}

// DeploymentView is one client-visible name in one region.
type DeploymentView struct {
	Name         string     `json:"name"`
	Deployment   string     `json:"deployment"`
	CoolingUntil *time.Time `json:"cooling_until,omitempty"`
	BrokenUntil  *time.Time `json:"broken_until,omitempty"`
	BrokenBy     string     `json:"broken_by,omitempty"`
}

// RegionsView is the body of GET /admin/regions.
type RegionsView struct {
	Ready   bool         `json:"ready"`
	Now     time.Time    `json:"now"`
	Uptime  string       `json:"uptime"`
	Names   []string     `json:"names"`
	Regions []RegionView `json:"regions"`
	Events  []Event      `json:"events"`
	Refresh float64      `json:"refresh_seconds"`
	// Shared is the state shared with the other replicas (state.redis): whether Redis answers, every replica's
	// view of the regions, and the manual switches in force with who and why. Absent without state.redis.
	Shared *state.View `json:"shared,omitempty"`
	// Gateway15m counts the gateway's own answers of the last 15 minutes (503 no region could serve, 504 the
	// client's deadline, 429 every region throttled...): errors no region is to blame for.
	Gateway15m Recent `json:"gateway_last_15m"`
}

// Regions is the snapshot behind GET /admin/regions and the status page.
func (g *Gateway) Regions() RegionsView {
	gen := g.state.Load()
	v := RegionsView{Ready: g.transport.Ready(), Now: g.now().UTC(), Uptime: time.Since(g.started).Round(time.Second).String(),
		Names: gen.cfg.Names(), Events: g.events.snapshot(), Refresh: gen.cfg.Admin.StatusRefresh.D().Seconds()}
	if g.shared != nil {
		sv := g.shared.View()
		v.Shared = &sv
	}
	switches := g.switchViews()
	for _, r := range g.transport.Regions() {
		rv := RegionView{Name: r.Name, Endpoint: r.Endpoint, State: r.State.String(), StateCode: int(r.State),
			Priority: r.Priority, Weight: r.Weight, ErrorRate: r.ErrorRate, Attempts: r.Attempts,
			LatencyMS: float64(r.Latency.Microseconds()) / 1000, InFlight: r.InFlight, Share: r.Share, Ramp: r.Ramp,
			OpenUntil: timePtr(r.OpenUntil), Trips: r.Trips, Deployments: []DeploymentView{}, Entra: entraView(r.Credential),
			RealtimeSessions: g.realtime.count(r.Name)}
		rv.DegradedReasons = degraded(r, gen.cfg.Policy.Breaker)
		rv.Degraded = len(rv.DegradedReasons) > 0
		rv.StateReason, rv.StateSince, rv.NextProbe = r.StateReason, timePtr(r.StateSince), timePtr(r.NextProbe)
		if p := r.LastProbe; p != nil {
			rv.LastProbe = &ProbeView{At: p.At.UTC(), Outcome: p.Outcome, LatencyMS: float64(p.Latency.Microseconds()) / 1000}
		}
		rv.Switch = switches[r.Name]
		rv.Display, rv.Reason = describeRegion(r, rv.DegradedReasons, gen.cfg.Policy.Breaker, v.Now)
		if rv.Display == "disabled" && rv.Switch != nil && rv.Switch.Disabled {
			rv.Reason = rv.Switch.describe(r.Name, g.replica())
		}
		rv.Last15m = g.hist.recent(r.Name, v.Now)
		for _, d := range r.Deployments {
			rv.Deployments = append(rv.Deployments, DeploymentView{Name: d.Name, Deployment: d.Deployment,
				CoolingUntil: timePtr(d.CoolingUntil), BrokenUntil: timePtr(d.BrokenUntil), BrokenBy: d.BrokenBy})
		}
		v.Regions = append(v.Regions, rv)
	}
	v.Gateway15m = g.hist.recent(failover.SelfRegion, v.Now)
	return v
}

// HistoryView is the body of GET /admin/history: each region's last 15 minutes, one value per StepSeconds,
// oldest first, the last slot holding End.
type HistoryView struct {
	StepSeconds float64   `json:"step_seconds"`
	End         time.Time `json:"end"`
	Started     time.Time `json:"started"` // when the gateway started: slots before it are empty, not quiet
	Regions     []Series  `json:"regions"`
	Gateway     Series    `json:"gateway"` // the gateway's own answers
}

// History is the snapshot behind GET /admin/history and the status page's charts.
func (g *Gateway) History() HistoryView {
	now := g.now()
	v := HistoryView{StepSeconds: historyStep.Seconds(), End: now.UTC(), Started: g.started.UTC(), Gateway: g.hist.series(failover.SelfRegion, now)}
	for _, r := range g.state.Load().cfg.Regions {
		v.Regions = append(v.Regions, g.hist.series(r.Name, now))
	}
	return v
}

func (g *Gateway) serveHistory(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, g.History())
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (g *Gateway) serveRegions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, g.Regions())
}

// serveRegion answers GET /admin/regions/{name}: one region's view, as in GET /admin/regions.
func (g *Gateway) serveRegion(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	name := r.PathValue("name")
	for _, rv := range g.Regions().Regions {
		if rv.Name == name {
			writeJSON(w, http.StatusOK, rv)
			return
		}
	}
	writeJSONError(w, http.StatusNotFound, "unknown_region", "no region is named "+strconv.Quote(name)+"; GET /admin/regions lists them")
}

func (g *Gateway) serveDisable(w http.ResponseWriter, r *http.Request) {
	g.setEnabled(w, r, false)
}

func (g *Gateway) serveEnable(w http.ResponseWriter, r *http.Request) {
	g.setEnabled(w, r, true)
}

func (g *Gateway) setEnabled(w http.ResponseWriter, r *http.Request, on bool) {
	name := r.PathValue("name")
	note := readSwitchNote(r)
	var err error
	switch {
	case g.shared != nil:
		err = g.shared.Switch(name, !on, note.By, note.Reason) // here at once, and on every replica
	case on:
		err = g.transport.Enable(name)
	default:
		err = g.transport.Disable(name)
	}
	if err == nil && g.shared == nil {
		g.switches.set(name, SwitchView{Disabled: !on, By: note.By, Reason: note.Reason, At: g.now().UTC()})
	}
	if errors.Is(err, failover.ErrUnknownRegion) {
		writeJSONError(w, http.StatusNotFound, "unknown_region", "no region is named "+strconv.Quote(name))
		return
	}
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "error", err.Error())
		return
	}
	action := "disabled"
	if on {
		action = "enabled"
	}
	g.log.Warn("region "+action+" by hand", "region", name, "by", note.By, "reason", note.Reason, "remote", r.RemoteAddr)
	for _, rv := range g.Regions().Regions {
		if rv.Name == name {
			writeJSON(w, http.StatusOK, rv)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"region": name, "result": action})
}

func (g *Gateway) serveReload(w http.ResponseWriter, r *http.Request) {
	err := g.ReloadFromSource()
	var cerrs *config.Errors
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{"reloaded": true})
	case errors.Is(err, errNoLoader):
		writeJSONError(w, http.StatusNotImplemented, "no_config_file", "this gateway was not started from a config file")
	case errors.As(err, &cerrs):
		problems := make([]string, len(cerrs.Problems))
		for i, p := range cerrs.Problems {
			problems[i] = p.String()
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{"reloaded": false,
			"error": map[string]any{"code": "invalid_config", "message": "the new config was refused; the old one keeps serving", "problems": problems}})
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"reloaded": false,
			"error": map[string]any{"code": "invalid_config", "message": "the new config was refused; the old one keeps serving: " + err.Error()}})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(failover.ErrorBody(code, "invalid_request_error", msg))
}
