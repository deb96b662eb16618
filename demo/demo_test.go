package demo

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDemoOutage plays the whole scripted outage through real sockets and checks what the summary claims against
// what the clients saw.
func TestDemoOutage(t *testing.T) {
	var out bytes.Buffer
	sum, err := Run(context.Background(), Options{Duration: 14 * time.Second, Rate: 25, Out: &out})
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
	if !sum.FailbackSeen {
		t.Error("the primary never served again after it came back")
	}
	if sum.Baseline == 0 || sum.DirectP50 <= 0 || sum.GatewayP50 <= 0 {
		t.Errorf("no added-latency baseline: %+v", sum)
	}
	for _, want := range []string{"eastus down", "failover eastus -> westus", "region eastus: healthy -> open", "westus throttled 0/s"} {
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
