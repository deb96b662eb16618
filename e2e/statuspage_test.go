package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lifeline-sre/lifeline/internal/browsertest"
	"github.com/lifeline-sre/lifeline/internal/redistest"
	"github.com/lifeline-sre/lifeline/internal/stacktest"
	"github.com/lifeline-sre/lifeline/sim"
)

// The browser helpers of internal/browsertest, under the names these tests use.
func browser(t *testing.T, width, height int) (context.Context, context.CancelFunc) {
	return browsertest.Open(t, width, height)
}
func field(region, name string) string { return browsertest.Field(region, name) }
func waitJS(t *testing.T, ctx context.Context, what, cond string, within time.Duration) {
	t.Helper()
	browsertest.WaitJS(t, ctx, what, cond, within)
}
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	return browsertest.Eval[T](t, ctx, js)
}
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	browsertest.Screenshot(t, ctx, "..", name)
}
func noOverflow(t *testing.T, ctx context.Context, width int) {
	t.Helper()
	browsertest.NoOverflow(t, ctx, width)
}
func pageText(ctx context.Context) string { return browsertest.PageText(ctx) }

// traffic sends requests through the gateway until stop: a chat completion every 60ms, every third one streamed,
// as a client with SDK retries off and a generous timeout would.
func traffic(t *testing.T, st *stacktest.Stack) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(60 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			body := `{"model":"gpt-4o","max_tokens":16,"messages":[{"role":"user","content":"status page test"}]}`
			if i%3 == 0 {
				body = `{"model":"gpt-4o","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"status page test"}]}`
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				req, _ := http.NewRequestWithContext(rctx, "POST", st.URL+"/openai/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("api-key", stacktest.ClientKey)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// TestStatusPageIncident drives an incident through real sockets while headless Chromium watches the status page:
// a black hole in eastus (the page shows it open, why, for how long and when the next probe is, and its failed
// attempts), then westus cutting streams (its stream errors and the streams resumed in swedencentral on the cards,
// westus taken out), then recovery (both healthy again), all on the default policy. It checks the loading state,
// the stale-data warning when polling fails, and the layout at 1280 px and on a phone, and takes the screenshots
// of docs/img.
func TestStatusPageIncident(t *testing.T) {
	// The default policy: what a user runs. Only the page's refresh is faster, so that the test waits less.
	st := stacktest.StartWith(t, []string{"eastus", "westus", "swedencentral"}, stacktest.Options{StatusRefresh: 500 * time.Millisecond})
	stop := traffic(t, st)
	defer stop()

	// Before any data arrives the page says it is loading, not "updated never" over an empty table.
	jar, _ := cookiejar.New(nil)
	resp, err := (&http.Client{Jar: jar}).Get(st.AdminURL + "/status?key=" + stacktest.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(html), `<div id="loading">Loading the gateway's state`) || !strings.Contains(string(html), `id="regions-section" hidden`) {
		t.Errorf("the page does not start in a loading state:\n%s", html)
	}

	ctx, cancel := browser(t, 1280, 1000)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(st.AdminURL+"/status?key="+stacktest.AdminKey)); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	waitJS(t, ctx, "three healthy regions", `["eastus","westus","swedencentral"].every(r => `+
		`(document.querySelector('.card[data-region="'+r+'"] [data-field="state"]')||{}).textContent === "healthy")`, 20*time.Second)
	if !eval[bool](t, ctx, `document.getElementById("loading").hidden && document.getElementById("banner").hidden`) {
		t.Error("the loading note or the stale banner is still shown with fresh data")
	}
	waitJS(t, ctx, "a requests line for eastus", `!!document.querySelector('svg[data-chart="requests"] polyline[data-region="eastus"]')`, 15*time.Second)

	// 1. A black hole: eastus accepts and never answers. The page must not show it green.
	if err := st.Sim.Fault("eastus", sim.Fault{Mode: sim.ModeBlackhole}); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "eastus open", field("eastus", "state")+` === "open"`, 20*time.Second)
	waitJS(t, ctx, "why eastus opened and when it is probed next",
		field("eastus", "reason")+`.includes("timeout") && /next probe (in \d+s|: now)/.test(`+field("eastus", "probe")+`) && `+
			field("eastus", "since")+`.startsWith("open for")`, 10*time.Second)
	waitJS(t, ctx, "eastus's failed attempts", `Number(`+field("eastus", "failed_attempts")+`) >= 3`, 10*time.Second)
	// On the default policy requests left waiting in eastus are hedged in westus; open, eastus is probed.
	waitJS(t, ctx, "requests hedged away from eastus, and won by westus", `Number(`+field("eastus", "hedges")+`) > 0 && `+
		`Number(`+field("westus", "hedges_won")+`) > 0`, 10*time.Second)
	waitJS(t, ctx, "a failed probe of eastus", `/last probe \d+(\.\d)?s ago: timeout after/.test(`+field("eastus", "last_probe")+`) && `+
		`/^[1-9]\d* \([1-9]/.test(`+field("eastus", "probes")+`)`, 30*time.Second)
	waitJS(t, ctx, "failed attempts of eastus in the errors chart",
		`Number((document.querySelector('svg[data-chart="errors"] polyline[data-region="eastus failed attempts"]')||{getAttribute:()=>0}).getAttribute("data-max")) > 0`, 15*time.Second)
	noOverflow(t, ctx, 1280)
	screenshot(t, ctx, "status-blackhole.png")

	// 2. Stream cuts: westus, which now carries the traffic, breaks every stream after three events. On the default
	// policy non-streaming requests go to regions as streams too (policy.stream_upstream), so each of them fails
	// over before its client sees a byte, and a client's stream that westus breaks goes on from swedencentral
	// (policy.streams.resume: replay; the simulator's answers are deterministic). The card counts the broken
	// streams and the resumes, and the breaker takes westus out for its stream errors.
	clientErrors := eval[int](t, ctx, `Number(`+field("westus", "client_errors")+`)`)
	if err := st.Sim.Fault("westus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3}); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "westus's broken streams resumed in swedencentral", `Number(`+field("westus", "stream_errors")+`) > 0 && `+
		`Number(`+field("westus", "resumes")+`) > 0 && Number(`+field("swedencentral", "resumed")+`) > 0`, 20*time.Second)
	waitJS(t, ctx, "the resumes in the events", `document.querySelector("#events tbody").textContent.includes("stream resumed westus \u2192 swedencentral")`, 5*time.Second)
	waitJS(t, ctx, "westus open for its broken streams", field("westus", "state")+` === "open" && `+
		field("westus", "reason")+`.includes("stream_error")`, 20*time.Second)
	if n := eval[int](t, ctx, `Number(`+field("westus", "client_errors")+`)`); n != clientErrors {
		t.Errorf("westus's clients saw %d errors while it cut streams: resumes and upstream streaming should hide them all", n-clientErrors)
	}
	screenshot(t, ctx, "status-stream-cuts.png")

	// 3. Recovery: both faults cleared; probes and trials bring the regions back.
	for _, r := range []string{"eastus", "westus"} {
		if err := st.Sim.Fault(r, sim.Fault{Mode: sim.ModeClear}); err != nil {
			t.Fatal(err)
		}
	}
	waitJS(t, ctx, "eastus and westus healthy again", field("eastus", "state")+` === "healthy" && `+field("westus", "state")+` === "healthy"`, 60*time.Second)
	waitJS(t, ctx, "the recovery in the events", `document.querySelector("#events tbody").textContent.includes("open \u2192 half-open")`, 5*time.Second)
	screenshot(t, ctx, "status-recovered.png")

	// Polling fails (the network to the gateway is gone): the page keeps the last data and says it is stale.
	eval[bool](t, ctx, `(window.fetch = () => Promise.reject(new Error("network down")), true)`)
	waitJS(t, ctx, "the stale-data warning", `!document.getElementById("banner").hidden && `+
		`document.getElementById("banner").textContent.includes("Stale data: the last update failed (network down)")`, 10*time.Second)
	if eval[string](t, ctx, field("eastus", "state")) != "healthy" {
		t.Error("the last known state is gone while polling fails")
	}
	screenshot(t, ctx, "status-stale.png")

	// A phone: one column, nothing sideways.
	if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the regions on a phone", field("swedencentral", "state")+` !== ""`, 15*time.Second)
	noOverflow(t, ctx, 390)
	screenshot(t, ctx, "status-phone.png")
}

// TestStatusPage opens the live status page in headless Chromium, disables a region through the admin API, and
// waits for the page to show the new state without a reload.
func TestStatusPage(t *testing.T) {
	st := stacktest.Start(t, []string{"eastus", "westus", "swedencentral"}, "")
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest("POST", st.URL+"/openai/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("api-key", stacktest.ClientKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	ctx, cancel := browser(t, 1280, 900)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(st.AdminURL+"/status?key="+stacktest.AdminKey)); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	waitJS(t, ctx, "eastus healthy", field("eastus", "state")+` === "healthy"`, 20*time.Second)

	req, _ := http.NewRequest("POST", st.AdminURL+"/admin/regions/eastus/disable", nil)
	req.Header.Set("Authorization", "Bearer "+stacktest.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("disable: status %d", resp.StatusCode)
	}
	// The page polls the admin API: the card must change without a reload, and say who did it.
	waitJS(t, ctx, "eastus disabled by hand", field("eastus", "state")+` === "disabled" && `+field("eastus", "reason")+`.includes("disabled by hand")`, 20*time.Second)
	screenshot(t, ctx, "status-page.png")
}

// TestStatusPageSharedState runs two replicas sharing state through a real redis-server, with headless Chromium on
// replica a's status page: a disable made on replica b shows on a's page with who, why and where, and every
// replica's view shows the region disabled; when Redis dies the page says that each replica serves on its own state
// and keeps the last known switches; when Redis returns the replicas are in step again and an enable on a reaches b.
func TestStatusPageSharedState(t *testing.T) {
	rdb, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	regions := []string{"eastus", "westus"}
	shared := func(replica string) string {
		return fmt.Sprintf("{replica: %s, sync_interval: 300ms, redis: {addr: %q, key_prefix: 'statuspage:'}}", replica, rdb.Addr)
	}
	a := stacktest.StartWith(t, regions, stacktest.Options{StatusRefresh: 500 * time.Millisecond, State: shared("replica-a")})
	b := stacktest.StartWith(t, regions, stacktest.Options{Sim: a.Sim, StatusRefresh: 500 * time.Millisecond, State: shared("replica-b")})
	stop := traffic(t, a)
	defer stop()

	ctx, cancel := browser(t, 1280, 1000)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.AdminURL+"/status?key="+stacktest.AdminKey)); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	status := `document.getElementById("shared-status").textContent`
	replicaSees := func(replica, region string) string {
		return fmt.Sprintf(`((document.querySelector('#replicas tr[data-replica=%q] td[data-region=%q]')||{}).textContent||"")`, replica, region)
	}
	waitJS(t, ctx, "Redis up and both replicas", status+`.startsWith("Redis reachable: 2 replicas") && `+
		replicaSees("replica-a", "eastus")+` === "healthy" && `+replicaSees("replica-b", "eastus")+` === "healthy" && `+
		`document.getElementById("redis").textContent === "redis up" && document.getElementById("replica").textContent === "replica-a"`, 30*time.Second)

	// A disable on replica b, with who and why: a's page shows it in the switches, in both replicas' views and on
	// the region's card.
	adminPost(t, b.AdminURL+"/admin/regions/eastus/disable", `{"by":"alice","reason":"INC-42: eastus flaps"}`)
	sw := func(f string) string {
		return fmt.Sprintf(`((document.querySelector('#switches tr[data-region="eastus"] [data-field=%q]')||{}).textContent||"")`, f)
	}
	waitJS(t, ctx, "b's disable of eastus with who, why and where", sw("switch")+` === "disabled" && `+sw("by")+` === "alice" && `+
		sw("reason")+` === "INC-42: eastus flaps" && `+sw("origin")+` === "replica-b"`, 20*time.Second)
	waitJS(t, ctx, "eastus disabled in every replica's view and on its card", replicaSees("replica-a", "eastus")+` === "disabled" && `+
		replicaSees("replica-b", "eastus")+` === "disabled" && `+replicaSees("replica-b", "westus")+` === "healthy" && `+
		field("eastus", "state")+` === "disabled" && `+field("eastus", "reason")+`.includes("by alice on replica replica-b")`, 20*time.Second)
	noOverflow(t, ctx, 1280)
	screenshot(t, ctx, "status-shared.png")

	// Redis dies: the page says so; the replica goes on serving on its own state, the switch still in force.
	rdb.Kill()
	waitJS(t, ctx, "Redis unreachable", status+`.startsWith("Redis unreachable: each replica serves on its own state") && `+
		`document.getElementById("redis").textContent === "redis DOWN" && `+
		`document.querySelector("#replicas tbody").textContent.includes("unknown while Redis is unreachable")`, 30*time.Second)
	if got := eval[string](t, ctx, field("eastus", "state")); got != "disabled" {
		t.Errorf("eastus shows %q while Redis is down; the switch is still in force", got)
	}
	if !eval[bool](t, ctx, `document.getElementById("banner").hidden`) {
		t.Error("Redis down is not the gateway down: the page's own data is fresh, yet it says stale")
	}
	noOverflow(t, ctx, 1280)
	screenshot(t, ctx, "status-redis-down.png")

	// Redis returns empty: each replica republishes what it holds, and an enable on a reaches b.
	if err := rdb.Restart(); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "Redis back with both replicas", status+`.startsWith("Redis reachable: 2 replicas") && `+sw("origin")+` === "replica-b"`, 30*time.Second)
	adminPost(t, a.AdminURL+"/admin/regions/eastus/enable", `{"by":"bob","reason":"INC-42 over"}`)
	waitJS(t, ctx, "a's enable of eastus seen by b", sw("switch")+` === "enabled" && `+sw("by")+` === "bob" && `+sw("origin")+` === "replica-a (this one)" && `+
		replicaSees("replica-b", "eastus")+` === "healthy"`, 20*time.Second)
}

// adminPost sends an admin POST with a JSON body and fails the test unless it answers 200.
func adminPost(t *testing.T, url, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+stacktest.AdminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, out)
	}
}
