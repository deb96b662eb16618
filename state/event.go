package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kind is what an Event says.
type Kind string

// Kinds of events.
const (
	// KindSwitch is a manual disable (Disabled true) or enable of a region, with who (By) and why (Reason).
	// It stays in force until the next switch of that region.
	KindSwitch Kind = "switch"
	// KindTrip is a region's breaker opening until Until (State "open"), or the region recovering (State
	// "healthy") after a probe succeeded.
	KindTrip Kind = "trip"
	// KindCool is a 429 cool-down of one deployment in one region until Until.
	KindCool Kind = "cool"
)

// Trip states.
const (
	TripOpen    = "open"
	TripHealthy = "healthy"
)

// Event is one shared fact with its deadline, as stored in Redis and sent to the other replicas.
type Event struct {
	Kind       Kind      `json:"kind"`
	Region     string    `json:"region"`
	Deployment string    `json:"deployment,omitempty"` // KindCool: the deployment's name in the region
	Disabled   bool      `json:"disabled,omitempty"`   // KindSwitch
	State      string    `json:"state,omitempty"`      // KindTrip: TripOpen or TripHealthy
	Until      time.Time `json:"until,omitzero"`       // KindTrip open, KindCool: the deadline
	Reason     string    `json:"reason,omitempty"`     // why (an outcome such as "timeout", or an operator's words)
	By         string    `json:"by,omitempty"`         // KindSwitch: who
	At         time.Time `json:"at"`                   // when it happened
	Origin     string    `json:"origin"`               // the replica it happened on
	// Rank orders events of the same key: the higher wins. Microseconds of At for switches and trips (the
	// latest change wins), of Until for cool-downs (the longest wins).
	Rank int64 `json:"rank"`
}

// Key is the slot an event occupies: a newer event of the same key replaces the older.
func (e Event) Key() string {
	switch e.Kind {
	case KindCool:
		return "cool:" + e.Region + ":" + e.Deployment
	default:
		return string(e.Kind) + ":" + e.Region
	}
}

// withRank sets Rank from At or Until.
func (e Event) withRank() Event {
	if e.Kind == KindCool {
		e.Rank = e.Until.UnixMicro()
	} else {
		e.Rank = e.At.UnixMicro()
	}
	return e
}

// InForce reports whether the event still says something at now: a switch always, an open trip or a cool-down
// until its deadline, a recovery for a minute (long enough for every replica to read it).
func (e Event) InForce(now time.Time) bool {
	switch {
	case e.Kind == KindSwitch:
		return true
	case e.Kind == KindTrip && e.State == TripHealthy:
		return now.Sub(e.At) < time.Minute
	default:
		return e.Until.After(now)
	}
}

// Bounds on what a replica accepts from Redis.
const (
	maxEventBytes = 4 << 10        // one event's JSON
	maxText       = 256            // region, deployment, reason, by, origin
	maxAhead      = 24 * time.Hour // how far in the future a deadline may be
)

// decodeEvent parses and checks one event read from Redis.
func decodeEvent(b []byte, now time.Time) (Event, error) {
	if len(b) > maxEventBytes {
		return Event{}, fmt.Errorf("event of %d bytes (limit %d)", len(b), maxEventBytes)
	}
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, err
	}
	for _, s := range []string{e.Region, e.Deployment, e.Reason, e.By, e.Origin} {
		if len(s) > maxText {
			return Event{}, errors.New("event field too long")
		}
	}
	switch {
	case e.Region == "":
		return Event{}, errors.New("event without a region")
	case e.Kind == KindCool && e.Deployment == "":
		return Event{}, errors.New("cool-down without a deployment")
	case e.Kind == KindTrip && e.State != TripOpen && e.State != TripHealthy:
		return Event{}, fmt.Errorf("trip state %q", e.State)
	case e.Kind != KindSwitch && e.Kind != KindTrip && e.Kind != KindCool:
		return Event{}, fmt.Errorf("unknown kind %q", e.Kind)
	case e.Until.After(now.Add(maxAhead)):
		return Event{}, fmt.Errorf("deadline %s is more than %s ahead", e.Until.Format(time.RFC3339), maxAhead)
	case e.Rank != e.withRank().Rank:
		return Event{}, errors.New("rank does not match the event")
	}
	return e, nil
}
