package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault modes.
const (
	ModeDown          = "down"            // the listener is closed: connection refused; idle connections are closed
	ModeBlackhole     = "blackhole"       // requests are read and never answered
	ModeSlow          = "slow"            // Latency is added before the answer, headers included
	ModeSlowFirstByte = "slow_first_byte" // the headers go at once; the first body byte after Latency
	ModeError         = "error"           // answer Status (default 503) with Azure's body
	ModeThrottle      = "throttle"        // answer 429 with Retry-After (default 10s)
	ModeCutStream     = "cut_stream"      // streams are reset (or with Clean, ended) after AfterEvents SSE events
	ModeStall         = "stall_stream"    // streams stop after AfterEvents SSE events, the connection held open
	ModeNoDone        = "no_done"         // chat and completions streams end cleanly without data: [DONE]
	ModeMalformed     = "malformed_event" // after AfterEvents events, one event whose data is broken JSON
	ModeFlap          = "flap"            // Outage for DownFor, then healthy for UpFor, Repeat times (0: until cleared)
	ModeClear         = "clear"           // remove the fault; a down region listens again on the same port
)

// modeList is the list of modes that errors name.
const modeList = "down | blackhole | slow | slow_first_byte | error | throttle | cut_stream | stall_stream | no_done | malformed_event | flap | clear"

// Fault is a failure injected into a region. Rate and Deployment apply to every mode but down, flap and clear.
type Fault struct {
	Mode       string   `json:"mode"`
	Rate       float64  `json:"rate,omitempty"`        // 0..1, the share of requests affected; 0 means 1
	Status     int      `json:"status,omitempty"`      // for error (and a flap's error outage); 0 means 503
	RetryAfter Duration `json:"retry_after,omitempty"` // for throttle (and a flap's throttle outage); 0 means 10s
	// Latency: for slow and slow_first_byte, the delay; for stall_stream, how long the stall lasts before the
	// stream goes on (0: until the client gives up).
	Latency Duration `json:"latency,omitempty"`
	// AfterEvents: for cut_stream, stall_stream and malformed_event, the SSE events sent before the fault acts.
	AfterEvents int `json:"after_events,omitempty"`
	// Clean: for cut_stream, end the response cleanly (the chunked body's terminator) instead of a TCP reset,
	// so that only the content shows the stream is truncated.
	Clean bool `json:"clean,omitempty"`
	// DownFor, UpFor, Repeat and Outage describe a flap: Outage (down, blackhole, error or throttle; default down)
	// for DownFor, then healthy for UpFor, Repeat times (0: until the fault is replaced or cleared).
	DownFor Duration `json:"down_for,omitempty"`
	UpFor   Duration `json:"up_for,omitempty"`
	Repeat  int      `json:"repeat,omitempty"`
	Outage  string   `json:"outage,omitempty"`
	// Deployment limits the fault to one deployment; empty: every request.
	Deployment string `json:"deployment,omitempty"`
}

// Validate reports a fault that cannot be applied, naming the field.
func (f Fault) Validate() error {
	switch f.Mode {
	case ModeDown, ModeBlackhole, ModeSlow, ModeSlowFirstByte, ModeError, ModeThrottle, ModeCutStream, ModeStall,
		ModeNoDone, ModeMalformed, ModeFlap, ModeClear:
	case "":
		return fmt.Errorf("fault: mode is required (%s)", modeList)
	default:
		return fmt.Errorf("fault: mode %q is unknown (%s)", f.Mode, modeList)
	}
	if f.Rate < 0 || f.Rate > 1 {
		return fmt.Errorf("fault: rate %v must be between 0 and 1", f.Rate)
	}
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		return fmt.Errorf("fault: status %d must be a 4xx or 5xx code", f.Status)
	}
	if f.AfterEvents < 0 {
		return fmt.Errorf("fault: after_events %d must not be negative", f.AfterEvents)
	}
	if f.Latency < 0 || f.RetryAfter < 0 || f.DownFor < 0 || f.UpFor < 0 {
		return fmt.Errorf("fault: durations must not be negative")
	}
	if (f.Mode == ModeSlow || f.Mode == ModeSlowFirstByte) && f.Latency == 0 {
		return fmt.Errorf("fault: %s needs latency (e.g. \"2s\")", f.Mode)
	}
	if f.Clean && f.Mode != ModeCutStream {
		return fmt.Errorf("fault: clean applies to cut_stream only")
	}
	return f.validateFlap()
}

// validateFlap checks the fields of a flap, and that other modes do not carry them.
func (f Fault) validateFlap() error {
	if f.Mode != ModeFlap {
		if f.DownFor != 0 || f.UpFor != 0 || f.Repeat != 0 || f.Outage != "" {
			return fmt.Errorf("fault: down_for, up_for, repeat and outage apply to flap only")
		}
		return nil
	}
	switch {
	case f.DownFor <= 0 || f.UpFor <= 0:
		return fmt.Errorf("fault: flap needs down_for and up_for (e.g. \"5s\")")
	case f.Repeat < 0:
		return fmt.Errorf("fault: repeat %d must not be negative (0: until cleared)", f.Repeat)
	case f.Rate != 0 || f.Deployment != "":
		return fmt.Errorf("fault: flap takes the whole region out: rate and deployment do not apply")
	}
	switch f.Outage {
	case "", ModeDown, ModeBlackhole, ModeError, ModeThrottle:
		return nil
	}
	return fmt.Errorf("fault: outage %q must be down, blackhole, error or throttle", f.Outage)
}

func (f Fault) normalized() Fault {
	if f.Mode == ModeFlap {
		if f.Outage == "" {
			f.Outage = ModeDown
		}
		return f
	}
	if f.Rate == 0 {
		f.Rate = 1
	}
	if f.Mode == ModeError && f.Status == 0 {
		f.Status = 503
	}
	if f.Mode == ModeThrottle && f.RetryAfter == 0 {
		f.RetryAfter = Duration(10 * time.Second)
	}
	return f
}

// outage is the fault a flap applies while its region is out.
func (f Fault) outage() Fault {
	return Fault{Mode: f.Outage, Status: f.Status, RetryAfter: f.RetryAfter}.normalized()
}

// Duration is a time.Duration that reads and writes Go duration strings ("7s", "250ms") in JSON and YAML.
// A bare JSON number is read as seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "7s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "7s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("duration %q: use Go syntax such as \"7s\" or \"250ms\"", str)
		}
		*d = Duration(v)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("duration %s: use a string such as \"7s\"", s)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// UnmarshalText reads a Go duration string (used by YAML).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: use Go syntax such as \"7s\" or \"250ms\"", string(b))
	}
	*d = Duration(v)
	return nil
}

// String returns the Go duration syntax.
func (d Duration) String() string { return time.Duration(d).String() }

// applyFault applies the region's fault to a call. It returns false when the fault answered (or swallowed) the
// request; cut_stream is remembered on the call and acts later, in the stream.
func (c *call) applyFault() bool {
	c.r.mu.RLock()
	fp := c.r.fault
	c.r.mu.RUnlock()
	if fp == nil || fp.Mode == ModeDown || fp.Mode == ModeFlap {
		return true
	}
	f := *fp
	if f.Deployment != "" && f.Deployment != c.rt.deployment {
		return true
	}
	if streamFault(f.Mode) && (c.gen == nil || !c.gen.Stream) {
		return true
	}
	if !c.r.chance(f.Rate) {
		return true
	}
	c.r.stats.faults.Add(1)
	switch f.Mode {
	case ModeBlackhole:
		c.r.stats.blackholed.Add(1)
		c.hold()
		return false
	case ModeSlow:
		return c.sleep(time.Duration(f.Latency))
	case ModeSlowFirstByte:
		c.w.firstByteDelay = time.Duration(f.Latency)
	case ModeError:
		writeJSON(c.w, f.Status, faultErrorBody(f.Status, c.w.Header().Get("apim-request-id")))
		return false
	case ModeThrottle:
		c.r.stats.throttled.Add(1)
		setRetryAfter(c.w.Header(), time.Duration(f.RetryAfter))
		writeJSON(c.w, http.StatusTooManyRequests, rateLimitBody(c.rt.op, c.rt.apiVersion, "token", time.Duration(f.RetryAfter)))
		return false
	case ModeCutStream, ModeStall, ModeNoDone, ModeMalformed:
		c.fault = &f
	}
	return true
}

// streamFault reports the modes that act inside an SSE stream and leave other answers alone.
func streamFault(mode string) bool {
	switch mode {
	case ModeCutStream, ModeStall, ModeNoDone, ModeMalformed:
		return true
	}
	return false
}

// hold takes the connection from the HTTP server and never answers; it returns when the client (or Close) ends
// the connection.
func (c *call) hold() {
	conn, brw, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		<-c.req.Context().Done()
		return
	}
	markHeld(conn)
	io.Copy(io.Discard, brw)
	conn.Close()
}

// sleep waits d unless the client goes away first; it reports whether the call should go on.
func (c *call) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.req.Context().Done():
		return false
	}
}
