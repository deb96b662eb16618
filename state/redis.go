package state

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lifeline-sre/lifeline/config"
)

// Timeouts of every Redis call. Nothing waits on Redis in the request path; these bound how long the background
// loop waits before it calls the backend down.
const (
	dialTimeout = time.Second
	ioTimeout   = time.Second
)

// NewClient makes the go-redis client for c: standalone, Sentinel (sentinel_master) or Cluster (cluster, or
// several addresses), through go-redis's one UniversalClient interface. It does not connect.
func NewClient(c *config.Redis) (redis.UniversalClient, error) {
	quietRedisLog()
	o := &redis.UniversalOptions{
		Addrs:              c.Addrs(),
		Username:           c.Username,
		Password:           c.Password,
		DB:                 c.DB,
		MasterName:         c.SentinelMaster,
		SentinelPassword:   c.SentinelPassword,
		IsClusterMode:      c.Cluster,
		DialTimeout:        dialTimeout,
		DialerRetries:      1, // go-redis's default retries a refused dial for most of a second
		DialerRetryTimeout: 50 * time.Millisecond,
		ReadTimeout:        ioTimeout,
		WriteTimeout:       ioTimeout,
		PoolSize:           4,
		MaxRetries:         1,
		DisableIdentity:    true, // no CLIENT SETINFO: managed Redis services may refuse it
		ClientName:         "lifeline",
	}
	if c.TLS != nil {
		tc, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		o.TLSConfig = tc
	}
	return redis.NewUniversalClient(o), nil
}

func tlsConfig(t *config.RedisTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("state.redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("state.redis.tls.ca_file: no PEM certificate in %s", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("state.redis.tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

var quietOnce sync.Once

// quietRedisLog silences go-redis's own logger, which is process-wide and would print a line for every failed
// reconnection while Redis is down; this package logs each change of the backend's state once instead.
func quietRedisLog() {
	quietOnce.Do(func() { redis.SetLogger(discard{}) })
}

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}

// putScript stores an event if it outranks the one stored under its key, and then publishes it. Replicas that
// republish what they hold after an outage cannot undo a newer change that way.
//
// KEYS[1] events hash; ARGV: field, event JSON, rank, channel.
var putScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, c = pcall(cjson.decode, cur)
  if ok and type(c) == 'table' and tonumber(c.rank) and tonumber(c.rank) >= tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
`)

// dropScript deletes a field only if it still holds the value read (expired events; stale replicas).
//
// KEYS[1] hash; ARGV: field, value.
var dropScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
`)
