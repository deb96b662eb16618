package demo

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDemoOutage plays the whole scripted outage, on the default policy, through real sockets and checks what the
// summary claims against what the clients saw. 40 s: the recovery comes at 20 s and the default probe interval is
// 5 s; the slow start (30 s) does not finish in the run.
func TestDemoOutage(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	sum, err := Run(context.Background(), Options{Duration: 40 * time.Second, Rate: 25, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	sum.Print(&out)
	t.Log(out.String())
	if sum.ClientErrors != 0 {
		t.Errorf("clients saw %d errors: %v", sum.ClientErrors, sum.FirstErrors)
	}
	if sum.Requests < 200 {
		t.Errorf("only %d requests were sent in 14s at 25/s", sum.Requests)
	}
	for _, r := range Regions {
		if sum.ByRegion[r] == 0 {
			t.Errorf("region %s served nothing; the timeline should route traffic through every region: %v", r, sum.ByRegion)
		}
	}
	if sum.FailoverFirst < 0 || sum.FailoverFirst > 2*time.Second {
		t.Errorf("time to first backup answer = %v", sum.FailoverFirst)
	}
	if !sum.OutOfRotation {
		t.Error("the primary's breaker was never seen opening")
	}
	if !sum.FailbackSeen || sum.FailbackFirst > 10*time.Second {
		t.Errorf("the primary did not serve again within 10s after it came back: seen %v after %v", sum.FailbackSeen, sum.FailbackFirst)
	}
	if sum.Resumed == 0 || sum.Hedged == 0 {
		t.Errorf("the gray phases did not show: %d streams resumed, %d hedged answers", sum.Resumed, sum.Hedged)
	}
	if sum.Baseline == 0 || sum.DirectP50 <= 0 || sum.GatewayP50 <= 0 {
		t.Errorf("no added-latency baseline: %+v", sum)
	}
	for _, want := range []string{"policy: the defaults", "eastus breaks streams", "westus goes silent", "eastus down",
		"region eastus: healthy -> open", "stream resumed eastus -> westus (ok)", "hedge westus -> swedencentral",
		"region westus: healthy -> open", "westus throttled 0/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("live view never showed %q", want)
		}
	}
	// The live view (not a terminal here: one line a second) reads in time order, events included.
	last := -1.0
	for _, line := range strings.Split(out.String(), "\n") {
		var at float64
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%fs", &at); err != nil || !strings.Contains(line, "s ") {
			continue
		}
		if at < last {
			t.Errorf("line out of time order (%.1fs after %.1fs): %s", at, last, line)
		}
		last = at
	}
}

func TestDemoNoOutage(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	sum, err := Run(context.Background(), Options{Duration: 5 * time.Second, Rate: 20, NoOutage: true, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if sum.ClientErrors != 0 || sum.Requests == 0 {
		t.Fatalf("requests %d, errors %d: %v", sum.Requests, sum.ClientErrors, sum.FirstErrors)
	}
	if sum.ByRegion["eastus"] != sum.Requests {
		t.Errorf("healthy run: eastus should serve everything, got %v of %d", sum.ByRegion, sum.Requests)
	}
}
