package config

import (
	"net"
	"strings"
	"time"
)

// State makes replicas share what they learn about regions (SPEC.md section 11).
type State struct {
	// Redis, when set, shares manual switches, breaker trips and recoveries, 429 cool-downs and the stored-object
	// index between every replica that uses the same Redis and key_prefix. Nil: each replica keeps its state to
	// itself.
	Redis *Redis `yaml:"redis"`
	// Replica names this replica in the shared view (status page, x-lifeline-replica, drill reports). Default: the
	// host name (the pod name on Kubernetes).
	Replica string `yaml:"replica"`
	// SyncInterval is the period of the full read that catches up on lost messages, and of each replica's
	// heartbeat. Default 2s.
	SyncInterval Duration `yaml:"sync_interval"`
}

// Redis is how to reach the Redis that replicas share: one server, Sentinel, or Cluster, through one client.
type Redis struct {
	// Addr is host:port; for Sentinel the Sentinels' addresses and for Cluster seed nodes, comma-separated.
	Addr     string `yaml:"addr"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB is the database number (standalone and Sentinel only). Default 0.
	DB int `yaml:"db"`
	// TLS, when set, connects over TLS; `tls: {}` trusts the system roots.
	TLS *RedisTLS `yaml:"tls"`
	// KeyPrefix starts every key and channel name Lifeline uses. Default "lifeline:". Gateways that should not
	// share state use different prefixes.
	KeyPrefix string `yaml:"key_prefix"`
	// SentinelMaster is the name of the master that the Sentinels at Addr watch; set, it selects Sentinel.
	SentinelMaster   string `yaml:"sentinel_master"`
	SentinelPassword string `yaml:"sentinel_password"`
	// Cluster selects Redis Cluster even with a single seed address (several addresses select it anyway).
	Cluster bool `yaml:"cluster"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	CAFile     string `yaml:"ca_file"`     // PEM roots to trust; empty: the system roots
	CertFile   string `yaml:"cert_file"`   // client certificate, for Redis servers that require one
	KeyFile    string `yaml:"key_file"`    // its key
	ServerName string `yaml:"server_name"` // name to verify; empty: the host of the address dialled
}

// Defaults of state.
const (
	DefaultKeyPrefix    = "lifeline:"
	DefaultSyncInterval = 2 * time.Second
)

// Addrs returns the addresses in Addr.
func (r *Redis) Addrs() []string {
	var out []string
	for a := range strings.SplitSeq(r.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (s *State) applyDefaults() {
	setDefault(&s.SyncInterval, Duration(DefaultSyncInterval))
	if s.Redis != nil {
		setDefault(&s.Redis.KeyPrefix, DefaultKeyPrefix)
	}
}

func (s State) validate(e *Errors) {
	if s.SyncInterval < 0 {
		e.add("state.sync_interval", "must not be negative, got %s", s.SyncInterval)
	} else if s.SyncInterval > 0 && s.SyncInterval.D() < 100*time.Millisecond {
		e.add("state.sync_interval", "must be at least 100ms, got %s", s.SyncInterval)
	}
	if strings.ContainsAny(s.Replica, " \t\r\n") || len(s.Replica) > 128 {
		e.add("state.replica", "must be at most 128 characters without spaces")
	}
	r := s.Redis
	if r == nil {
		return
	}
	addrs := r.Addrs()
	if len(addrs) == 0 {
		e.add("state.redis.addr", "is required (host:port)")
	}
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			e.add("state.redis.addr", "%q is not host:port", a)
		}
	}
	if r.DB < 0 {
		e.add("state.redis.db", "must not be negative")
	}
	if r.SentinelMaster != "" && r.Cluster {
		e.add("state.redis.cluster", "cannot be used with sentinel_master")
	}
	if (r.Cluster || len(addrs) > 1 && r.SentinelMaster == "") && r.DB != 0 {
		e.add("state.redis.db", "Redis Cluster has only db 0")
	}
	if r.TLS != nil && (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		e.add("state.redis.tls", "cert_file and key_file go together")
	}
	if strings.ContainsAny(r.KeyPrefix, " \t\r\n*?[]{}") {
		e.add("state.redis.key_prefix", "must not contain spaces or the characters *?[]{}")
	}
}
