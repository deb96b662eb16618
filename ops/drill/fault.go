package drill

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// ParseFault reads a --fault value: a simulator fault mode alone ("down"), a mode with its fields as key=value
// pairs ("stall_stream,after_events=3", "flap,down_for=5s,up_for=5s,repeat=3,outage=blackhole"), or the JSON body
// of the simulator's control API. hold is the drill's outage: a throttle without retry_after asks for that long.
func ParseFault(spec string, hold time.Duration) (sim.Fault, error) {
	spec = strings.TrimSpace(spec)
	var raw []byte
	if strings.HasPrefix(spec, "{") {
		raw = []byte(spec)
	} else {
		fields := map[string]any{}
		parts := strings.Split(spec, ",")
		fields["mode"] = strings.TrimSpace(parts[0])
		for _, p := range parts[1:] {
			k, v, ok := strings.Cut(p, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || k == "" {
				return sim.Fault{}, fmt.Errorf("--fault %q: %q is not key=value", spec, p)
			}
			fields[k] = fieldValue(k, v)
		}
		raw, _ = json.Marshal(fields)
	}
	var f sim.Fault
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return sim.Fault{}, fmt.Errorf("--fault %q: %v", spec, err)
	}
	if f.Mode == sim.ModeClear {
		return sim.Fault{}, fmt.Errorf("--fault %q: clear is what the drill does at the end; name a fault", spec)
	}
	if f.Mode == sim.ModeThrottle && f.RetryAfter == 0 {
		f.RetryAfter = sim.Duration(hold)
	}
	if err := f.Validate(); err != nil {
		return sim.Fault{}, fmt.Errorf("--fault %q: %v", spec, err)
	}
	return f, nil
}

// fieldValue types a key=value value for the JSON body: numbers and booleans as such, names and durations as
// strings.
func fieldValue(k, v string) any {
	switch k {
	case "mode", "deployment", "outage", "latency", "retry_after", "down_for", "up_for":
		return v
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return n
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return v
}

// takesRegionOut reports whether a fault leaves the region unable to answer anything, so that a drill must see
// traffic settle elsewhere. Under the others (slow answers, streams without [DONE], a flap's healthy phases, a
// rate below 1) the region may still serve some requests well.
func takesRegionOut(f sim.Fault) bool {
	if f.Rate != 0 && f.Rate < 1 {
		return false
	}
	switch f.Mode {
	case sim.ModeDown, sim.ModeBlackhole, sim.ModeThrottle, sim.ModeError, sim.ModeCutStream:
		return true
	case sim.ModeStall:
		return f.Latency == 0
	}
	return false
}

// streamFault reports the faults that act only on streamed answers: a drill under them sends streams.
func streamFault(mode string) bool {
	switch mode {
	case sim.ModeCutStream, sim.ModeStall, sim.ModeNoDone, sim.ModeMalformed:
		return true
	}
	return false
}
