package demo

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	var samples []Sample
	// 0-1s healthy on eastus with a direct baseline; outage at 1s; westus until 2s; eastus back at 2s and gradually.
	for i := 0; i < 400; i++ {
		start := time.Duration(i) * 10 * ms
		region := "eastus"
		switch {
		case start >= time.Second && start < 2*time.Second:
			region = "westus"
		case start >= 2*time.Second && start < 2500*ms && i%2 == 0:
			region = "westus"
		}
		samples = append(samples, Sample{Start: start, Latency: 5 * ms, Region: region})
	}
	samples = append(samples, Sample{Start: 1500 * ms, Latency: 4 * ms, Region: "westus", Stream: true, Err: "boom"})
	s := summarize(samples, "eastus", time.Second, 2*time.Second, 1100*ms)
	if s.Requests != 401 || s.Streams != 1 || s.ClientErrors != 1 || s.FirstErrors[0] != "boom" {
		t.Errorf("counts: %+v", s)
	}
	if s.FailoverFirst != 5*ms {
		t.Errorf("FailoverFirst = %v, want 5ms (the first westus answer starts at 1s and takes 5ms)", s.FailoverFirst)
	}
	if !s.OutOfRotation || s.FailoverOut != 100*ms {
		t.Errorf("FailoverOut = %v", s.FailoverOut)
	}
	if !s.FailbackSeen || s.FailbackFirst != 15*ms {
		t.Errorf("FailbackFirst = %v, want 15ms", s.FailbackFirst)
	}
	// Only windows starting at 2.5s or later are all eastus: the first full window ends at 3.5s... but 90% is
	// reached earlier: a window from 2.1s has 40 of its 100 requests before 2.5s, half of them eastus: 80%.
	// From 2.3s: 20 before 2.5s, 10 of them westus: 90%, ending 3.3s -> 1.3s after recovery.
	if !s.FailbackFilled || s.FailbackFull != 1300*ms {
		t.Errorf("FailbackFull = %v, want 1.3s", s.FailbackFull)
	}
	s.addBaseline([]time.Duration{10 * ms, 20 * ms, 30 * ms}, []time.Duration{11 * ms, 23 * ms, 30 * ms})
	if s.Baseline != 3 || s.AddedP50 != ms || s.DirectP50 != 20*ms || s.GatewayP50 != 23*ms {
		t.Errorf("baseline: %+v", s)
	}
}
