package state

import (
	"github.com/lifeline-sre/lifeline/failover"
)

// Observer returns the failover.Observer that tells this Shared about local trips, recoveries and 429s. It never
// blocks: it notes what happened and wakes the background loop.
func (s *Shared) Observer() failover.Observer { return observer{s: s} }

type observer struct {
	failover.NopObserver
	s *Shared
}

func (o observer) AttemptFinished(r failover.AttemptResult) {
	if r.Outcome == failover.OutcomeThrottled {
		o.s.poke() // the cool-down is read from the engine by scanLocal
	}
}

func (o observer) StateChanged(c failover.StateChange) {
	if c.Shared || !(c.To == failover.Open || c.From == failover.HalfOpen && c.To == failover.Healthy) {
		return // learned from another replica, or nothing to share (manual switches are shared by Switch)
	}
	s := o.s
	s.mu.Lock()
	if len(s.trips) < 1024 {
		s.trips = append(s.trips, c)
	}
	s.mu.Unlock()
	s.poke()
}

// scanLocal turns what happened here into events: the trips and recoveries the observer noted, and every 429
// cool-down the engine holds that is later than the one this replica knows (so one learned from another replica
// is not sent back).
func (s *Shared) scanLocal() {
	e := s.eng()
	if e == nil {
		return
	}
	s.mu.Lock()
	trips := s.trips
	s.trips = nil
	s.mu.Unlock()
	for _, c := range trips {
		ev := Event{Kind: KindTrip, Region: c.Region, At: c.At, Reason: c.Reason}
		if c.To == failover.Open {
			ev.State, ev.Until = TripOpen, c.Until
		} else {
			ev.State = TripHealthy
		}
		s.local(ev)
	}
	now := s.now()
	for _, r := range e.Regions() {
		for _, d := range r.Deployments {
			if !d.CoolingUntil.After(now) {
				continue
			}
			k := Event{Kind: KindCool, Region: r.Name, Deployment: d.Deployment}.Key()
			s.mu.Lock()
			cur, ok := s.known[k]
			s.mu.Unlock()
			if ok && !cur.Until.Before(d.CoolingUntil) {
				continue
			}
			s.local(Event{Kind: KindCool, Region: r.Name, Deployment: d.Deployment, Until: d.CoolingUntil, At: now, Reason: "throttled"})
		}
	}
}
