// Package continuity holds the end-to-end tests of issue 12 (gray failures): simulated regions and `lifeline serve`
// on real sockets, on the default policy, driven by the official openai-go client (retries off) and the npm openai
// client (e2e/node/continuity.test.mjs), one test per fault. See docs/failover.md.
package continuity
