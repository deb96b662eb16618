package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Options configure a drill. Zero values mean the defaults in brackets.
type Options struct {
	URL      string        // gateway client base URL, e.g. http://127.0.0.1:8080
	Key      string        // client key of the gateway
	Name     string        // client-visible model name ["": the first name the gateway lists]
	Admin    string        // gateway admin base URL, e.g. http://127.0.0.1:8081
	AdminKey string        // admin key
	Region   string        // the region to take out
	Rate     float64       // requests per second [5]
	Before   time.Duration // steady traffic before the outage [10s]
	Hold     time.Duration // how long the region stays out [20s]
	// FailbackTimeout bounds the wait, after the region is restored, until failback finished: the region healthy
	// again and taking its full share of traffic (slow start done) [3m]. A drill whose failback did not finish
	// in time fails and says where the region was.
	FailbackTimeout time.Duration
	After           time.Duration // steady traffic after failback finished [20s]
	MaxTokens       int           // max_tokens per request [8]
	Timeout         time.Duration // per request [30s]
	// Fault, when set, takes the region out with a real simulator fault through SimControl instead of the admin
	// switch, so the automatic failover path is rehearsed: a mode ("down"), a mode with fields
	// ("stall_stream,after_events=3"), or the control API's JSON body (see ParseFault).
	Fault      string
	SimControl string // simulator control URL, e.g. http://127.0.0.1:18000
	// Stream sends streaming chat completions (an answer counts only when it ended with a finish_reason).
	Stream bool
	// Answers, when set, puts every simulated region in that answer mode ("deterministic", "random", "region")
	// for the drill, and restores each region's mode at the end.
	Answers  string
	HTTP     *http.Client // nil: a client with the per-request timeout
	Progress io.Writer    // one line per phase; nil: discarded
}

func (o *Options) defaults() {
	if o.Rate <= 0 {
		o.Rate = 5
	}
	if o.Before <= 0 {
		o.Before = 10 * time.Second
	}
	if o.Hold <= 0 {
		o.Hold = 20 * time.Second
	}
	if o.After <= 0 {
		o.After = 20 * time.Second
	}
	if o.FailbackTimeout <= 0 {
		o.FailbackTimeout = 3 * time.Minute
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// switcher takes the region out and brings it back.
type switcher interface {
	out(ctx context.Context) error
	back(ctx context.Context) error
}

// Run performs the drill and returns its report. It returns an error only when the drill could not be run (the
// gateway, the admin API or the simulator refused); a drill in which clients saw errors is a report that did not
// pass.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	if o.Region == "" {
		return nil, errors.New("no region to take out: pass --region NAME (one of the gateway's regions)")
	}
	var sw switcher = &adminSwitch{o: &o}
	method := "admin"
	var fault sim.Fault
	if o.Fault != "" {
		var err error
		if fault, err = ParseFault(o.Fault, o.Hold); err != nil {
			return nil, err
		}
		sw, method = &faultSwitch{o: &o, f: fault}, "fault:"+fault.Mode
	}
	if o.Answers != "" {
		restore, err := setAnswers(ctx, &o)
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	if err := preflight(ctx, &o); err != nil {
		return nil, err
	}
	rep := &Report{Gateway: o.URL, Name: o.Name, Region: o.Region, Method: method, Rate: o.Rate,
		Before: o.Before, Hold: o.Hold, After: o.After, StartedAt: time.Now()}
	tr := newTraffic(&o)
	start := time.Now()
	trafficCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { tr.run(trafficCtx, start); close(done) }()
	var t Timing
	fmt.Fprintf(o.Progress, "drill: %.1f req/s to %q through %s; %s goes out after %s\n", o.Rate, o.Name, o.URL, o.Region, o.Before)
	err := phases(ctx, &o, sw, start, &t, tr)
	stop()
	<-done
	if err != nil {
		// Never leave the region out because the drill stopped half way.
		_ = sw.back(context.WithoutCancel(ctx))
		return nil, err
	}
	t.End = time.Since(start)
	rep.Samples = tr.samples()
	rep.Timing.DisableMs, rep.Timing.EnableMs, rep.Timing.EndMs = msf(t.Disable), msf(t.Enable), msf(t.End)
	if t.Recovered > 0 {
		v := msf(t.Recovered)
		rep.Timing.RecoveredMs = &v
	}
	rep.FailbackTimeout = o.FailbackTimeout
	rep.Analysis = Analyze(rep.Samples, o.Region, t, 0)
	if o.Fault != "" && !takesRegionOut(fault) {
		rep.Analysis.regionMayServe()
	}
	return rep, nil
}

func phases(ctx context.Context, o *Options, sw switcher, start time.Time, t *Timing, tr *traffic) error {
	if err := sleep(ctx, o.Before); err != nil {
		return err
	}
	if err := sw.out(ctx); err != nil {
		return err
	}
	t.Disable = time.Since(start) // when the switch has taken effect
	fmt.Fprintf(o.Progress, "drill: [%5.1fs] %s out; holding %s\n", t.Disable.Seconds(), o.Region, o.Hold)
	if err := sleep(ctx, o.Hold); err != nil {
		return err
	}
	// The outage ends when restoring begins: a request that starts while the switch is being turned back may
	// already be answered by the region, and must not count as traffic that failed to leave it.
	t.Enable = time.Since(start)
	if err := sw.back(ctx); err != nil {
		return err
	}
	fmt.Fprintf(o.Progress, "drill: [%5.1fs] %s back; waiting for failback (at most %s)\n", t.Enable.Seconds(), o.Region, o.FailbackTimeout)
	if err := waitFailback(ctx, o, start, t, tr); err != nil {
		return err
	}
	if t.Recovered == 0 {
		fmt.Fprintf(o.Progress, "drill: [%5.1fs] failback did not finish within %s (%s was %s); stopping\n",
			time.Since(start).Seconds(), o.FailbackTimeout, o.Region, t.FailbackState)
		return nil
	}
	fmt.Fprintf(o.Progress, "drill: [%5.1fs] failback finished: %s healthy and at its full share; watching for %s\n",
		t.Recovered.Seconds(), o.Region, o.After)
	return sleep(ctx, o.After)
}

// waitFailback waits until the restored region is healthy again and takes its full share of traffic, or until
// o.FailbackTimeout. With the admin API it reads the region's state and slow-start ramp; without it (a --fault
// drill without --admin-key) it judges from the traffic: the region answers the share it had before the outage.
// It sets t.Recovered (0: not in time), t.FailbackWait and t.FailbackState.
func waitFailback(ctx context.Context, o *Options, start time.Time, t *Timing, tr *traffic) error {
	t.FailbackWait = o.FailbackTimeout
	deadline := time.Now().Add(o.FailbackTimeout)
	before := share(tr.samples(), o.Region, 0, t.Disable)
	lastSaid := time.Now()
	for {
		now := time.Since(start)
		back, state := false, ""
		samples := tr.samples()
		answered := before == 0 || share(samples, o.Region, t.Enable, now) > 0
		if o.AdminKey != "" {
			v, err := regionView(ctx, o)
			if err != nil {
				return err
			}
			back, state = v.State == "healthy" && v.Ramp >= 1 && answered, v.describe(time.Now())
		} else {
			recent := share(samples, o.Region, max(t.Enable, now-2*time.Second), now)
			back, state = before == 0 || recent >= 0.9*before, fmt.Sprintf("answering %.0f%% of requests (%.0f%% before the outage)", 100*recent, 100*before)
		}
		if back {
			t.Recovered = now
			return nil
		}
		t.FailbackState = state
		if time.Now().After(deadline) {
			return nil
		}
		if time.Since(lastSaid) >= 5*time.Second {
			fmt.Fprintf(o.Progress, "drill: [%5.1fs] waiting for failback: %s %s\n", now.Seconds(), o.Region, state)
			lastSaid = time.Now()
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// share is the region's share of the good answers to requests that started in [from, to).
func share(samples []Sample, region string, from, to time.Duration) float64 {
	n, mine := 0, 0
	for _, s := range samples {
		if s.Start < from || s.Start >= to || s.Err != "" {
			continue
		}
		n++
		if s.Region == region {
			mine++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(mine) / float64(n)
}

// adminRegion is what the drill reads of a region in GET /admin/regions.
type adminRegion struct {
	Name      string     `json:"name"`
	State     string     `json:"state"`
	Ramp      float64    `json:"ramp"`
	OpenUntil *time.Time `json:"open_until"`
}

func (v adminRegion) describe(now time.Time) string {
	switch {
	case v.State == "open" && v.OpenUntil != nil:
		return fmt.Sprintf("open, next probe in %s", max(0, v.OpenUntil.Sub(now)).Round(time.Second))
	case v.State == "healthy" && v.Ramp < 1:
		return fmt.Sprintf("healthy, ramping up at %.0f%% of its share (slow start)", 100*v.Ramp)
	case v.State == "healthy":
		return "healthy, but had not answered a request yet"
	}
	return v.State
}

// regionView reads the drilled region's state from the admin API.
func regionView(ctx context.Context, o *Options) (adminRegion, error) {
	var view struct {
		Regions []adminRegion `json:"regions"`
	}
	if err := adminGet(ctx, o, "/admin/regions", &view); err != nil {
		return adminRegion{}, err
	}
	for _, r := range view.Regions {
		if r.Name == o.Region {
			return r, nil
		}
	}
	return adminRegion{}, fmt.Errorf("the gateway no longer has a region %q", o.Region)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// preflight checks the admin API knows the region and picks a name when none was given.
func preflight(ctx context.Context, o *Options) error {
	if o.Fault == "" || o.AdminKey != "" {
		var regions []struct {
			Name string `json:"name"`
		}
		if err := adminCall(ctx, o, http.MethodGet, "/admin/regions", &regions); err != nil {
			return err
		}
		var names []string
		for _, r := range regions {
			names = append(names, r.Name)
		}
		if len(names) > 0 && !contains(names, o.Region) {
			return fmt.Errorf("the gateway has no region %q; its regions are %s", o.Region, strings.Join(names, ", "))
		}
	}
	if o.Name != "" {
		return nil
	}
	client := o.client()
	page, err := client.Models.List(ctx)
	if err != nil {
		return fmt.Errorf("listing the gateway's names at %s: %w (check --url and --key)", o.URL, err)
	}
	// The drill sends chat completions: take the first name that answers one (an embeddings name does not).
	for _, m := range page.Data {
		o.Name = m.ID
		if s := newTraffic(o).send(ctx, time.Now()); s.Err == "" {
			return nil
		}
	}
	return fmt.Errorf("none of the gateway's names at %s answered a chat completion; pass --name", o.URL)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// adminCall sends an admin request; the decoded answer (a JSON array or an object with "regions") goes in out.
func adminCall(ctx context.Context, o *Options, method, path string, out *[]struct {
	Name string `json:"name"`
}) error {
	if o.Admin == "" {
		return errors.New("no admin URL: pass --admin (the gateway's admin listener, e.g. http://127.0.0.1:8081)")
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(o.Admin, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+o.AdminKey)
	resp, err := o.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("admin API %s %s: %w (is the gateway running? check --admin)", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("admin API %s %s: HTTP %d: the admin key was refused; pass the gateway's admin.key as --admin-key", method, path, resp.StatusCode)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("admin API %s %s: HTTP 404: %s", method, path, strings.TrimSpace(string(data)))
	case resp.StatusCode >= 300:
		return fmt.Errorf("admin API %s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	if json.Unmarshal(data, out) != nil {
		var wrapped struct {
			Regions []struct {
				Name string `json:"name"`
			} `json:"regions"`
		}
		if err := json.Unmarshal(data, &wrapped); err != nil {
			return fmt.Errorf("admin API %s: unexpected answer: %w", path, err)
		}
		*out = wrapped.Regions
	}
	return nil
}

// adminGet reads an admin API route as JSON into out.
func adminGet(ctx context.Context, o *Options, path string, out any) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, strings.TrimRight(o.Admin, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+o.AdminKey)
	resp, err := o.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("admin API GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API GET %s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API GET %s: unexpected answer: %w", path, err)
	}
	return nil
}

type adminSwitch struct{ o *Options }

func (a *adminSwitch) out(ctx context.Context) error {
	return adminCall(ctx, a.o, http.MethodPost, "/admin/regions/"+url.PathEscape(a.o.Region)+"/disable", nil)
}

func (a *adminSwitch) back(ctx context.Context) error {
	return adminCall(ctx, a.o, http.MethodPost, "/admin/regions/"+url.PathEscape(a.o.Region)+"/enable", nil)
}

type faultSwitch struct {
	o *Options
	f sim.Fault
}

func (f *faultSwitch) out(ctx context.Context) error {
	return f.o.control(ctx, "/regions/"+url.PathEscape(f.o.Region)+"/fault", f.f, nil)
}

func (f *faultSwitch) back(ctx context.Context) error {
	return f.o.control(ctx, "/regions/"+url.PathEscape(f.o.Region)+"/fault", sim.Fault{Mode: sim.ModeClear}, nil)
}

// setAnswers puts every simulated region in o.Answers and returns the function that restores their modes.
func setAnswers(ctx context.Context, o *Options) (restore func(), err error) {
	var before []sim.RegionStatus
	if err := o.control(ctx, "/regions", nil, &before); err != nil {
		return nil, err
	}
	if err := o.control(ctx, "/answers", map[string]string{"mode": o.Answers}, nil); err != nil {
		return nil, err
	}
	return func() {
		for _, r := range before {
			_ = o.control(context.WithoutCancel(ctx), "/regions/"+url.PathEscape(r.Name)+"/answers", map[string]string{"mode": r.Answers}, nil)
		}
	}, nil
}

// control calls the simulator's control API: a POST of body, or a GET when body is nil; out receives the answer.
func (o *Options) control(ctx context.Context, path string, body, out any) error {
	if o.SimControl == "" {
		return errors.New("--fault and --answers need --sim-control (the simulator's control URL, e.g. http://127.0.0.1:18000)")
	}
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil {
		b, _ := json.Marshal(body)
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	u := strings.TrimRight(o.SimControl, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("simulator control %s: %w (is `lifeline sim` running? check --sim-control)", u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("simulator control %s: HTTP %d: %s", u, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("simulator control %s: unexpected answer: %w", u, err)
		}
	}
	return nil
}

// traffic sends requests at a steady rate and records what each client saw.
type traffic struct {
	o      *Options
	client openai.Client
	mu     sync.Mutex
	list   []Sample
	wg     sync.WaitGroup
}

func (o *Options) client() openai.Client {
	return openai.NewClient(
		option.WithBaseURL(strings.TrimRight(o.URL, "/")+"/openai/v1/"),
		option.WithAPIKey(o.Key),
		option.WithHTTPClient(o.HTTP),
		option.WithMaxRetries(0), // count what the gateway gives, not what an SDK retry hides
		option.WithRequestTimeout(o.Timeout),
	)
}

func newTraffic(o *Options) *traffic { return &traffic{o: o, client: o.client()} }

func (tr *traffic) run(ctx context.Context, start time.Time) {
	interval := time.Duration(float64(time.Second) / tr.o.Rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for ctx.Err() == nil {
		tr.wg.Add(1)
		// In-flight requests finish even when the drill ends, so that ending it does not cause errors.
		go tr.one(context.WithoutCancel(ctx), start)
		select {
		case <-ctx.Done():
			tr.wg.Wait()
			return
		case <-tick.C:
		}
	}
	tr.wg.Wait()
}

func (tr *traffic) one(ctx context.Context, start time.Time) {
	defer tr.wg.Done()
	s := tr.send(ctx, start)
	tr.mu.Lock()
	tr.list = append(tr.list, s)
	tr.mu.Unlock()
}

// send makes one request and records what the client saw.
func (tr *traffic) send(ctx context.Context, start time.Time) Sample {
	ctx, cancel := context.WithTimeout(ctx, tr.o.Timeout)
	defer cancel()
	begin := time.Now()
	var resp *http.Response
	params := openai.ChatCompletionNewParams{
		Model:     tr.o.Name,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Lifeline drill: reply with one word.")},
		MaxTokens: openai.Int(int64(tr.o.MaxTokens)),
	}
	var err error
	if tr.o.Stream {
		err = tr.stream(ctx, params, option.WithResponseInto(&resp))
	} else {
		_, err = tr.client.Chat.Completions.New(ctx, params, option.WithResponseInto(&resp))
	}
	s := Sample{Start: begin.Sub(start), Latency: time.Since(begin)}
	if resp != nil {
		s.Region, s.Status = resp.Header.Get("x-lifeline-region"), resp.StatusCode
		s.Replica = resp.Header.Get("x-lifeline-replica")
	}
	if err != nil {
		s.Err = err.Error()
		var apiErr *openai.Error
		if errors.As(err, &apiErr) {
			s.Status = apiErr.StatusCode
		}
	}
	return s
}

// errNoFinish is a stream that ended without a finish_reason: a truncated answer, even if no error said so.
var errNoFinish = errors.New("the stream ended without a finish_reason")

// stream reads a streamed answer to its end; an error event, a broken stream or a missing finish_reason is an
// error.
func (tr *traffic) stream(ctx context.Context, params openai.ChatCompletionNewParams, opts ...option.RequestOption) error {
	st := tr.client.Chat.Completions.NewStreaming(ctx, params, opts...)
	defer st.Close()
	finished := false
	for st.Next() {
		for _, c := range st.Current().Choices {
			finished = finished || c.FinishReason != ""
		}
	}
	if err := st.Err(); err != nil {
		return err
	}
	if !finished {
		return errNoFinish
	}
	return nil
}

func (tr *traffic) samples() []Sample {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]Sample(nil), tr.list...)
}
