// Package state shares what one gateway replica learns about regions with the other replicas, through Redis
// (SPEC.md section 11, `state.redis`): manual switches with who and why, breaker trips with their deadline and
// recoveries, and 429 cool-downs per (region, deployment), as events "open until T because R". Failure counting
// stays local; each replica still probes a tripped region itself before sending it traffic again.
//
// Redis is never in the request path. Local events are queued and written by a background loop; remote ones
// arrive by pub/sub within milliseconds, and a full read every state.sync_interval catches up on any message
// lost. While Redis is unreachable a replica serves on its own state and reports lifeline_state_backend_up 0;
// when it returns, each replica writes back what it holds that is still in force (a newer change always wins)
// and reads the others', without a restart.
package state
