// Package monitoring holds what operators load into their monitoring: the Grafana dashboard
// (grafana/lifeline.json) and the Prometheus alerting rules with their unit tests (prometheus/). Its Go tests run
// promtool on them and check that every metric they use is one the gateway exports (docs/monitoring.md).
package monitoring
