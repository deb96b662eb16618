# Generates lifeline.json, the Grafana dashboard (docs/monitoring.md): python3 monitoring/grafana/gen_dashboard.py
import json
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job",instance=~"$instance"'
panels = []
y = [0]
pid = [0]

def nid():
    pid[0] += 1
    return pid[0]

def row(title):
    panels.append({"type": "row", "title": title, "id": nid(), "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y[0]}, "panels": []})
    y[0] += 1

def panel(kind, title, desc, targets, x, w, h, unit=None, extra=None):
    p = {"type": kind, "title": title, "description": desc, "id": nid(), "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x, "y": y[0]},
         "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)} for i, (e, l) in enumerate(targets)],
         "fieldConfig": {"defaults": {}, "overrides": []}, "options": {}}
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
        p["options"] = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi", "sort": "desc"}}
    if extra:
        for k, v in extra.items():
            if k == "defaults":
                p["fieldConfig"]["defaults"].update(v)
            else:
                p[k] = v
    panels.append(p)

state_map = [{"type": "value", "options": {
    "0": {"text": "healthy", "color": "green", "index": 0},
    "1": {"text": "half-open", "color": "yellow", "index": 1},
    "2": {"text": "open", "color": "red", "index": 2},
    "3": {"text": "disabled", "color": "gray", "index": 3}}}]

row("Now")
panel("stat", "Regions out of service", "Regions open or half-open (the breaker took them out; probes decide when they come back). Alert: LifelineRegionOpen.",
      [(f'count(max by (instance, region) (lifeline_region_state{{{SEL}}}) >= 1 < 3) or vector(0)', "")], 0, 4, 4,
      extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}},
             "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}}})
panel("stat", "Degraded regions", "Regions that serve but slowly or with rising errors (docs/monitoring.md, Degraded). Alert: LifelineRegionDegraded.",
      [(f'count(max by (instance, region) (lifeline_region_degraded{{{SEL}}}) == 1) or vector(0)', "")], 4, 4, 4,
      extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}]}},
             "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}}})
panel("stat", "Client-visible errors (5m)", "Share of requests answered with a 5xx that the client saw. Alert: LifelineClientErrors (over 1%).",
      [(f'(sum(rate(lifeline_requests_total{{{SEL},code=~"5.."}}[5m])) or vector(0)) / clamp_min(sum(rate(lifeline_requests_total{{{SEL}}}[5m])), 1e-9)', "")], 8, 4, 4, unit="percentunit",
      extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 0.001}, {"color": "red", "value": 0.01}]}},
             "options": {"colorMode": "background", "graphMode": "area", "reduceOptions": {"calcs": ["lastNotNull"]}}})
panel("stat", "Requests per second", "Client requests, all regions and codes.",
      [(f'sum(rate(lifeline_requests_total{{{SEL}}}[$__rate_interval]))', "")], 12, 4, 4, unit="reqps",
      extra={"options": {"graphMode": "area", "reduceOptions": {"calcs": ["lastNotNull"]}}})
panel("stat", "Broken streams (10m)", "Responses that broke after they started: the client got an in-band error event. Alert: LifelineStreamTruncations.",
      [(f'sum(increase(lifeline_stream_errors_total{{{SEL}}}[10m])) or vector(0)', "")], 16, 4, 4,
      extra={"defaults": {"decimals": 0, "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}]}},
             "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}}})
panel("stat", "State backend (Redis)", "1: this replica shares state through Redis; 0: it serves on its own state. Only with state.redis. Alert: LifelineStateBackendDown.",
      [(f'min by (instance) (lifeline_state_backend_up{{{SEL}}})', "{{instance}}")], 20, 4, 4,
      extra={"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}],
                          "noValue": "not used"},
             "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}}})
y[0] += 4
panel("state-timeline", "Region state", "lifeline_region_state: healthy, half-open (a probe decides), open (out of service), disabled (by hand).",
      [(f'max by (region) (lifeline_region_state{{{SEL},region=~"$region"}})', "{{region}}")], 0, 12, 7,
      extra={"defaults": {"mappings": state_map, "color": {"mode": "thresholds"},
                          "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}},
             "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8}})
panel("state-timeline", "Degraded", "lifeline_region_degraded by reason: errors (failed share of attempts at least half of breaker.failure_rate) or slow (usual time to headers above breaker.abandoned_after).",
      [(f'max by (region, reason) (lifeline_region_degraded{{{SEL},region=~"$region"}})', "{{region}} {{reason}}")], 12, 12, 7,
      extra={"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "no", "color": "green"}, "1": {"text": "degraded", "color": "orange"}}}],
                          "color": {"mode": "thresholds"}, "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}},
             "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8}})
y[0] += 7

row("Traffic")
panel("timeseries", "Requests by answering region", "Client requests per second by the region that answered (lifeline: the gateway's own answers).",
      [(f'sum by (region) (rate(lifeline_requests_total{{{SEL},region=~"$region|lifeline"}}[$__rate_interval]))', "{{region}}")], 0, 12, 8, unit="reqps",
      extra={"defaults": {"custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 30, "stacking": {"mode": "normal"}, "showPoints": "never"}}})
panel("timeseries", "Client-visible errors by code", "Requests per second that ended with a 4xx or 5xx, by region and status. 429 from region lifeline: every region of a name throttled.",
      [(f'sum by (region, code) (rate(lifeline_requests_total{{{SEL},code=~"[45].."}}[$__rate_interval]))', "{{region}} {{code}}")], 12, 12, 8, unit="reqps")
y[0] += 8
panel("timeseries", "Upstream attempts by outcome", "Attempts per second by region and outcome (ok, timeout, server_error, throttled, stream_error, ...).",
      [(f'sum by (region, outcome) (rate(lifeline_upstream_attempts_total{{{SEL},region=~"$region"}}[$__rate_interval]))', "{{region}} {{outcome}}")], 0, 12, 8, unit="reqps")
panel("timeseries", "Failovers", "Requests per second that left a failing region for another, by reason (the failed attempt's outcome).",
      [(f'sum by (from, to, reason) (rate(lifeline_failovers_total{{{SEL}}}[$__rate_interval]))', "{{from}} → {{to}} ({{reason}})")], 12, 12, 8, unit="reqps")
y[0] += 8

row("Latency")
for i, (metric, title, desc) in enumerate([
        ("lifeline_request_duration_seconds", "Request duration p50 / p95 / p99", "Until the last byte reached the client, by answering region."),
        ("lifeline_time_to_first_byte_seconds", "Time to first byte p95", "Until the first body byte reached the client (for a stream: the first event)."),
        ("lifeline_upstream_latency_seconds", "Upstream time to headers p95", "Per attempt: until the region's response headers, or the failure."),
]):
    qs = [0.5, 0.95, 0.99] if i == 0 else [0.95]
    panel("timeseries", title, desc,
          [(f'histogram_quantile({q}, sum by (le, region) (rate({metric}_bucket{{{SEL},region=~"$region"}}[$__rate_interval])))', "{{region}} p" + str(int(q * 100))) for q in qs],
          8 * i, 8, 8, unit="s")
y[0] += 8

row("Gray failures: streams, hedges, resumes, probes")
panel("timeseries", "Broken streams", "Responses per second whose body failed after the status was sent, by region.",
      [(f'sum by (region) (rate(lifeline_stream_errors_total{{{SEL},region=~"$region"}}[$__rate_interval]))', "{{region}}")], 0, 6, 8, unit="reqps")
panel("timeseries", "Hedges", "Requests started again in the next region because the first byte was late, by region and outcome.",
      [(f'sum by (region, outcome) (rate(lifeline_hedges_total{{{SEL}}}[$__rate_interval]))', "{{region}} {{outcome}}")], 6, 6, 8, unit="reqps")
panel("timeseries", "Stream resumes", "Streams a region broke that continued in another region, by outcome.",
      [(f'sum by (from, to, outcome) (rate(lifeline_stream_resumes_total{{{SEL}}}[$__rate_interval]))', "{{from}} → {{to}} {{outcome}}")], 12, 6, 8, unit="reqps")
panel("timeseries", "Active probes", "Background probes of open regions, by outcome.",
      [(f'sum by (region, outcome) (rate(lifeline_probes_total{{{SEL}}}[$__rate_interval]))', "{{region}} {{outcome}}")], 18, 6, 8, unit="reqps")
y[0] += 8

row("Credentials and shared state")
panel("state-timeline", "Entra ID credential", "lifeline_entra_credential_state per region that signs in with Entra ID: valid token, refresh failing (the token still serves), no token (requests fail over). Alerts: LifelineEntraNoToken, LifelineEntraTokenExpiring.",
      [(f'max by (region) (lifeline_entra_credential_state{{{SEL},region=~"$region"}})', "{{region}}")], 0, 8, 7,
      extra={"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "valid", "color": "green"}, "1": {"text": "refresh failing", "color": "orange"},
                                                                     "2": {"text": "no token", "color": "red"}}}],
                          "color": {"mode": "thresholds"}, "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
                          "noValue": "no Entra ID region"},
             "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8}})
panel("timeseries", "Entra ID token lifetime left", "Until each region's token expires. Tokens are renewed a quarter of their life before expiry: a line that keeps falling below 10 minutes means renewals fail (LifelineEntraTokenExpiring).",
      [(f'min by (region) (lifeline_entra_token_expiry_timestamp_seconds{{{SEL},region=~"$region"}} > 0) - time()', "{{region}}")], 8, 8, 7, unit="s",
      extra={"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 600}]}}})
panel("timeseries", "Shared state events", "With state.redis: events this replica published and applied from others (by how they arrived: pubsub or the periodic read), events rejected as malformed (LifelineStateEventsRejected) and background writes dropped.",
      [(f'sum by (instance, kind) (rate(lifeline_state_events_published_total{{{SEL}}}[$__rate_interval]))', "published {{kind}} {{instance}}"),
       (f'sum by (instance, via) (rate(lifeline_state_events_applied_total{{{SEL}}}[$__rate_interval]))', "applied via {{via}} {{instance}}"),
       (f'sum by (instance) (rate(lifeline_state_events_rejected_total{{{SEL}}}[$__rate_interval]))', "rejected {{instance}}"),
       (f'sum by (instance) (rate(lifeline_state_writes_dropped_total{{{SEL}}}[$__rate_interval]))', "writes dropped {{instance}}")], 16, 8, 7, unit="ops")
y[0] += 7
panel("timeseries", "Name fallbacks", "Requests per second that moved on to a fallback name (fallbacks:), by reason: unavailable (no region could serve the name) or context_length_exceeded.",
      [(f'sum by (from, to, reason) (rate(lifeline_name_fallbacks_total{{{SEL}}}[$__rate_interval]))', "{{from}} → {{to}} ({{reason}})")], 0, 12, 7, unit="reqps")
y[0] += 7

row("Capacity")
panel("timeseries", "Tokens per second", "From the usage that regions return, by region and kind.",
      [(f'sum by (region, kind) (rate(lifeline_tokens_total{{{SEL},region=~"$region"}}[$__rate_interval]))', "{{region}} {{kind}}")], 0, 8, 8)
panel("timeseries", "In flight", "Client requests being served, and open Realtime sessions by region.",
      [(f'sum by (instance) (lifeline_requests_in_flight{{{SEL}}})', "requests {{instance}}"),
       (f'sum by (region) (lifeline_realtime_sessions{{{SEL}}})', "realtime {{region}}")], 8, 8, 8)
panel("state-timeline", "Deployments cooling down (429)", "1 while a (name, region) pair cools down after a 429. Every region of a name at 1: LifelineAllRegionsThrottled.",
      [(f'max by (name, region) (lifeline_deployment_cooling{{{SEL},region=~"$region"}})', "{{name}} @ {{region}}")], 16, 8, 8,
      extra={"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "ok", "color": "green"}, "1": {"text": "cooling", "color": "orange"}}}],
                          "color": {"mode": "thresholds"}, "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}},
             "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8}})
y[0] += 8
panel("timeseries", "Config reloads", "Reloads (SIGHUP, POST /admin/reload) by result; an error means the old config kept serving.",
      [(f'sum by (result) (increase(lifeline_config_reloads_total{{{SEL}}}[$__rate_interval]))', "{{result}}")], 0, 12, 6)
y[0] += 6

def var(name, label, query, include_all=True, multi=True):
    return {"name": name, "label": label, "type": "query", "datasource": DS, "query": {"query": query, "refId": name},
            "definition": query, "refresh": 2, "includeAll": include_all, "multi": multi, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "sort": 1}

dash = {
    "title": "Lifeline",
    "uid": "lifeline-overview",
    "description": "Lifeline gateway: region states, client-visible errors, failovers, latency, streams, capacity (docs/monitoring.md).",
    "tags": ["lifeline", "azure-openai"],
    "timezone": "utc",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "graphTooltip": 1,
    "time": {"from": "now-1h", "to": "now"},
    "refresh": "30s",
    "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
                              "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
    "templating": {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "refresh": 1,
         "current": {}, "hide": 0},
        var("job", "job", "label_values(lifeline_region_state, job)"),
        var("instance", "instance", 'label_values(lifeline_region_state{job=~"$job"}, instance)'),
        var("region", "region", 'label_values(lifeline_region_state{job=~"$job",instance=~"$instance"}, region)'),
    ]},
    "panels": panels,
}
import os
json.dump(dash, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "lifeline.json"), "w"), indent=2, ensure_ascii=False)
print(len(panels), "panels")
