package failover

import "time"

// Observer receives the engine's events. All methods are called synchronously on the request's
// goroutine (StateChanged also from Disable, Enable and Reconfigure); keep them cheap and never
// block. Embed NopObserver to implement only some of them.
type Observer interface {
	AttemptStarted(AttemptStart)
	AttemptFinished(AttemptResult)
	Failover(FailoverEvent)
	StateChanged(StateChange)
	// Probe is called after each active probe (from the prober's goroutine).
	Probe(ProbeEvent)
	// Hedge is called when a request's hedge is decided.
	Hedge(HedgeEvent)
	// NameFallback is called when a request moves on to a fallback name (Config.Fallbacks).
	NameFallback(FallbackEvent)
	// Resume is called for each resume of a broken stream that was tried (policy.streams.resume).
	Resume(ResumeEvent)
}

// AttemptStart is sent before each upstream attempt.
type AttemptStart struct {
	Region  string
	Name    string // client-visible name ("" for requests without one)
	Attempt int    // 1-based attempt number within the request
	Probe   bool   // the half-open trial that decides whether the region comes back
	Hedge   bool   // a hedge: the same request as an attempt in another region that had no first byte yet
	// ResumeFrom is, for an attempt that resumes a stream another region broke, that region.
	ResumeFrom string
}

// AttemptResult is sent once per attempt. For a response that is handed to the caller with a
// status below 400 it is sent when the body ends (EOF, error or Close), so that a stream that
// fails after the headers is reported as OutcomeStreamError rather than OutcomeOK.
type AttemptResult struct {
	Region  string
	Name    string
	Attempt int
	Outcome Outcome
	Status  int           // 0 when no response arrived
	Latency time.Duration // until the response headers (or the failure)
	// Duration is until the attempt ended: body end for a delivered response, else Latency.
	Duration   time.Duration
	RetryAfter time.Duration // the region's hint, if any
	Err        error         // transport or stream error; nil for responses
}

// FailoverEvent is sent when a request leaves a region that failed it for another region.
type FailoverEvent struct {
	Name     string
	From, To string
	Reason   Outcome // the outcome of the last attempt in From
}

// StateChange is sent when a region's state changes.
type StateChange struct {
	Region   string
	From, To State
	At       time.Time
	// Reason is what made the change: the outcome of the attempt that decided it (`timeout`,
	// `stream_error`, `ok` for a successful trial...) or one of the Reason* constants (`open_for_passed`,
	// `probe_ok`, `failure_rate`, `manual`, `shared`).
	Reason string
	// Until is, for a change to Open, when the region may be tried again (a trial request; active
	// probes may bring it back sooner).
	Until time.Time
	// Shared marks a change applied from outside with ApplyRegionEvent (another replica's news),
	// as opposed to one this engine decided.
	Shared bool
}

// NopObserver ignores every event; embed it to implement part of Observer.
type NopObserver struct{}

func (NopObserver) AttemptStarted(AttemptStart)   {}
func (NopObserver) AttemptFinished(AttemptResult) {}
func (NopObserver) Failover(FailoverEvent)        {}
func (NopObserver) StateChanged(StateChange)      {}
func (NopObserver) Probe(ProbeEvent)              {}
func (NopObserver) Hedge(HedgeEvent)              {}
func (NopObserver) NameFallback(FallbackEvent)    {}
func (NopObserver) Resume(ResumeEvent)            {}

// Observers fans events out to several observers, in order.
type Observers []Observer

func (os Observers) AttemptStarted(e AttemptStart) {
	for _, o := range os {
		o.AttemptStarted(e)
	}
}

func (os Observers) AttemptFinished(e AttemptResult) {
	for _, o := range os {
		o.AttemptFinished(e)
	}
}

func (os Observers) Failover(e FailoverEvent) {
	for _, o := range os {
		o.Failover(e)
	}
}

func (os Observers) StateChanged(e StateChange) {
	for _, o := range os {
		o.StateChanged(e)
	}
}

func (os Observers) Probe(e ProbeEvent) {
	for _, o := range os {
		o.Probe(e)
	}
}

func (os Observers) Hedge(e HedgeEvent) {
	for _, o := range os {
		o.Hedge(e)
	}
}

func (os Observers) NameFallback(e FallbackEvent) {
	for _, o := range os {
		o.NameFallback(e)
	}
}

func (os Observers) Resume(e ResumeEvent) {
	for _, o := range os {
		o.Resume(e)
	}
}
