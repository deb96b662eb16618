package drill

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestAnalyzeReplicas: behind a load balancer each answer names its replica; the report breaks the traffic down
// by replica and phase, so that a replica still sending to the region during the outage shows.
func TestAnalyzeReplicas(t *testing.T) {
	s := steady(3000*ms, func(at time.Duration) (string, string) {
		if at >= 1000*ms && at < 2300*ms {
			return "westus", ""
		}
		return "eastus", ""
	})
	for i := range s {
		s[i].Replica = []string{"r1", "r2", "r3"}[i%3]
	}
	s[12].Region = "eastus" // r1 answered from eastus during the outage
	a := Analyze(s, "eastus", timing, 10)
	if len(a.Replicas) != 3 || a.Replicas[0].Name != "r1" || a.Replicas[2].Name != "r3" {
		t.Fatalf("replicas %+v", a.Replicas)
	}
	if n := a.Replicas[0].ByPhase["during"]["eastus"]; n != 1 {
		t.Errorf("r1 during the outage: %v", a.Replicas[0].ByPhase["during"])
	}
	if n := a.Replicas[1].ByPhase["during"]["eastus"]; n != 0 {
		t.Errorf("r2 during the outage: %v", a.Replicas[1].ByPhase["during"])
	}
	total := 0
	for _, r := range a.Replicas {
		total += r.Requests
	}
	if total != len(s) {
		t.Errorf("replicas account for %d of %d requests", total, len(s))
	}
	var md bytes.Buffer
	(&Report{Region: "eastus", Analysis: a}).WriteMarkdown(&md)
	if !strings.Contains(md.String(), "## Per replica") || !strings.Contains(md.String(), "| r2 |") {
		t.Errorf("markdown:\n%s", md.String())
	}
	if b := Analyze(steady(3000*ms, func(time.Duration) (string, string) { return "eastus", "" }), "eastus", timing, 10); len(b.Replicas) != 0 {
		t.Errorf("replicas without x-lifeline-replica: %+v", b.Replicas)
	}
}
