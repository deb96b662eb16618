package gateway

import (
	"slices"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
)

func TestDegraded(t *testing.T) {
	b := config.Breaker{FailureRate: 0.5, MinRequests: 20, AbandonedAfter: config.Duration(5 * time.Second)}
	for _, tc := range []struct {
		name string
		r    failover.RegionStatus
		want []string
	}{
		{"healthy and quiet", failover.RegionStatus{State: failover.Healthy}, nil},
		{"a quarter of attempts failed", failover.RegionStatus{State: failover.Healthy, ErrorRate: 0.25, Attempts: 8}, []string{DegradedErrors}},
		{"just under a quarter", failover.RegionStatus{State: failover.Healthy, ErrorRate: 0.24, Attempts: 100}, nil},
		{"too few attempts to judge", failover.RegionStatus{State: failover.Healthy, ErrorRate: 1, Attempts: 4}, nil},
		{"slow headers", failover.RegionStatus{State: failover.Healthy, Latency: 5 * time.Second}, []string{DegradedSlow}},
		{"slow and failing", failover.RegionStatus{State: failover.Healthy, Latency: 17 * time.Second, ErrorRate: 0.9, Attempts: 30},
			[]string{DegradedErrors, DegradedSlow}},
		{"open is not degraded but open", failover.RegionStatus{State: failover.Open, ErrorRate: 1, Attempts: 30}, nil},
		{"disabled", failover.RegionStatus{State: failover.Disabled, Latency: time.Minute}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := degraded(tc.r, b); !slices.Equal(got, tc.want) {
				t.Errorf("degraded = %v, want %v", got, tc.want)
			}
		})
	}
	// The rate rule off (failure_rate above 1) means no errors reason either.
	if got := degraded(failover.RegionStatus{State: failover.Healthy, ErrorRate: 1, Attempts: 50}, config.Breaker{FailureRate: 2, MinRequests: 20}); got != nil {
		t.Errorf("with the rate rule off: %v", got)
	}
}
