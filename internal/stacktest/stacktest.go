// Package stacktest starts the whole Lifeline stack for end-to-end tests: simulated regions and the real gateway in
// front of them, each on its own loopback socket.
package stacktest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/sim"
)

// Keys used by every stack.
const (
	RegionKey = "region-key-not-for-clients"
	ClientKey = "client-key"
	AdminKey  = "admin-key"
)

// Stack is a running system under test.
type Stack struct {
	Sim      *sim.Sim
	Gateway  *gateway.Gateway
	URL      string // client listener, e.g. http://127.0.0.1:PORT
	AdminURL string
}

// Start starts simulated regions with the given names (in order of priority, each serving gpt-4o and gpt-4o-mini)
// and a gateway in front of them; policy is YAML for the `policy:` key (may be empty). Everything stops with t.
func Start(t testing.TB, regions []string, policy string) *Stack {
	return StartWith(t, regions, Options{Policy: policy})
}

// Options are what StartWith may change of the stack's config.
type Options struct {
	Policy        string        // YAML for the `policy:` key ("": defaults)
	StatusRefresh time.Duration // admin.status_refresh (0: the default)
	// Sim is the simulator to put the gateway in front of; nil starts one. Several replicas of the gateway share
	// one simulator this way.
	Sim *sim.Sim
	// State is YAML for the `state:` key ("": none), for replicas that share state through Redis, e.g.
	// "{replica: a, sync_interval: 300ms, redis: {addr: 127.0.0.1:6379, key_prefix: 'test1:'}}".
	State string
}

// StartWith is Start with more of the config chosen.
func StartWith(t testing.TB, regions []string, o Options) *Stack {
	t.Helper()
	policy := o.Policy
	s := o.Sim
	if s == nil {
		var err error
		if s, err = sim.Start(sim.Config{Regions: sim.DefaultRegions(regions...), APIKey: RegionKey}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
	}
	var b strings.Builder
	refresh := ""
	if o.StatusRefresh > 0 {
		refresh = ", status_refresh: " + o.StatusRefresh.String()
	}
	fmt.Fprintf(&b, "clients: [{name: e2e, key: %s}]\nadmin: {key: %s%s}\nserver: {shutdown_delay: -1s}\nregions:\n", ClientKey, AdminKey, refresh)
	for i, name := range regions {
		fmt.Fprintf(&b, "  - {name: %s, endpoint: %s, api_key: %s, priority: %d, deployments: {gpt-4o: gpt-4o, gpt-4o-mini: gpt-4o-mini}}\n",
			name, s.Region(name).URL(), RegionKey, i+1)
	}
	if policy != "" {
		b.WriteString("policy:\n" + strings.TrimSuffix(policy, "\n") + "\n")
	}
	if o.State != "" {
		b.WriteString("state: " + o.State + "\n")
	}
	cfg, err := config.Parse([]byte(b.String()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("stack config: %v\n%s", err, b.String())
	}
	gw, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	// The gateway serves as `lifeline serve` does (gateway.Serve: Lifeline's HTTP/1.x server, net/http for h2c
	// and the admin listener), so the real clients of the e2e tests go through the same server code.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, ln, aln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway.Serve: %v", err)
		}
	})
	return &Stack{Sim: s, Gateway: gw, URL: "http://" + ln.Addr().String(), AdminURL: "http://" + aln.Addr().String()}
}
