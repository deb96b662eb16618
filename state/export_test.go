package state

import "github.com/lifeline-sre/lifeline/internal/redistest"

// SharedRedis is the package's one redis-server, for the multi-replica tests in package state_test.
func SharedRedis() *redistest.Server { return rdb }
