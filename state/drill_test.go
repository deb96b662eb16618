package state_test

import (
	"context"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/ops/drill"
)

// TestDrillThroughLoadBalancer runs `lifeline drill` against three replicas behind Debian's nginx: the disable
// goes to one replica's admin API and takes the region out on all of them; the report says, per replica, which
// region answered in each phase.
func TestDrillThroughLoadBalancer(t *testing.T) {
	p := "test:" + t.Name() + ":"
	rs := []*gw{startGW(t, p, "r1", replicaOpts{}), startGW(t, p, "r2", replicaOpts{}), startGW(t, p, "r3", replicaOpts{})}
	lb := nginxLB(t, []string{rs[0].url[len("http://"):], rs[1].url[len("http://"):], rs[2].url[len("http://"):]})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := drill.Run(ctx, drill.Options{URL: lb, Key: clientKey, Name: "gpt-4o", Admin: rs[1].adminURL, AdminKey: adminKey,
		Region: "eastus", Rate: 30, Before: 1500 * time.Millisecond, Hold: 2 * time.Second,
		After: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a := rep.Analysis
	if !a.Passed || a.Errors != 0 {
		t.Errorf("drill through the load balancer: passed %v, %d errors, problems %v", a.Passed, a.Errors, a.Problems)
	}
	if len(a.Replicas) != 3 {
		t.Fatalf("the report names %d replicas, want 3: %+v", len(a.Replicas), a.Replicas)
	}
	for _, r := range a.Replicas {
		if r.ByPhase["before"]["eastus"] == 0 || r.ByPhase["after"]["eastus"] == 0 {
			t.Errorf("%s did not carry eastus traffic before and after: %v", r.Name, r.ByPhase)
		}
		if r.ByPhase["during"]["eastus"] > 2 { // a request or two may have been on their way when the switch arrived
			t.Errorf("%s kept answering from eastus during the outage: %v", r.Name, r.ByPhase["during"])
		}
	}
}
