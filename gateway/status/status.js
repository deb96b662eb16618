// Lifeline status page: polls /admin/regions and /admin/history (same origin, the status cookie authenticates)
// and renders them with textContent and SVG elements only, so nothing from the server is ever parsed as HTML.
// The charts are drawn here, from the history's 5-second slots: no external script, style or font.
(function () {
  "use strict";
  var refresh = Number(document.currentScript.getAttribute("data-refresh")) || 2000;
  var historyEvery = Math.max(refresh, 5000);
  var SVG = "http://www.w3.org/2000/svg";
  var palette = ["#0969da", "#1a7f37", "#8250df", "#bc4c00", "#bf3989", "#1b7c83", "#9a6700", "#57606a"];
  var view = null;      // the last /admin/regions answer
  var hist = null;      // the last /admin/history answer
  var lastOK = 0;       // when view last arrived (client clock)
  var failure = "";     // why the last poll failed ("" when it worked)
  var offset = 0;       // server clock minus client clock, from view.now

  function $(id) { return document.getElementById(id); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function pct(x) { return (100 * (x || 0)).toFixed(1) + "%"; }
  function dur(ms) {
    if (!(ms >= 0)) return "\u2013";
    if (ms > 0 && ms < 1000) return (ms / 1000).toFixed(1) + "s";
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + "s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m" + (s % 60 ? " " + (s % 60) + "s" : "");
    var h = Math.floor(m / 60);
    return h + "h" + (m % 60 ? " " + (m % 60) + "m" : "");
  }
  function serverNow() { return Date.now() + offset; }
  function utc(t) { return new Date(t).toISOString().slice(11, 19) + " UTC"; }
  function color(i) { return palette[i % palette.length]; }
  function stateLabel(s) { return String(s || "unknown").replace("_", "-"); }

  // --- regions -------------------------------------------------------------------------------------------

  function figure(parent, label, value, field, bad, help) {
    var d = el("div");
    var t = el("dt", label);
    if (help) t.title = help;
    d.appendChild(t);
    var v = el("dd", value, bad ? "bad" : "");
    if (field) v.setAttribute("data-field", field);
    d.appendChild(v);
    parent.appendChild(d);
  }

  function card(r) {
    var c = el("div", null, "card state-" + r.display_state);
    c.setAttribute("data-region", r.name);
    var h = el("h2");
    h.appendChild(el("span", r.name));
    var b = el("span", stateLabel(r.display_state), "badge " + r.display_state);
    b.setAttribute("data-field", "state");
    h.appendChild(b);
    c.appendChild(h);
    var why = el("p", r.reason || (r.display_state === "healthy" ? "serving normally" : ""), "why");
    why.setAttribute("data-field", "reason");
    c.appendChild(why);
    var when = el("p", null, "when");
    var since = el("span");
    since.setAttribute("data-field", "since");
    when.appendChild(since);
    var probe = el("span");
    probe.setAttribute("data-field", "probe");
    when.appendChild(probe);
    var lastProbe = el("span");
    lastProbe.setAttribute("data-field", "last_probe");
    when.appendChild(lastProbe);
    c.appendChild(when);
    if (r.entra) c.appendChild(entra(r.entra));
    var dl = el("dl");
    figure(dl, "traffic share", pct(r.share), "share");
    figure(dl, "error rate (window)", pct(r.error_rate), "error_rate", r.error_rate > 0);
    figure(dl, "latency to headers", r.latency_ms ? r.latency_ms.toFixed(r.latency_ms < 10 ? 1 : 0) + " ms" : "\u2013", "latency");
    figure(dl, "in flight", r.in_flight, "in_flight");
    figure(dl, "priority / weight", r.priority + " / " + r.weight, "priority");
    figure(dl, "trips in a row", r.trips, "trips", r.trips > 0);
    figure(dl, "realtime sessions", r.realtime_sessions || 0, "realtime_sessions");
    c.appendChild(dl);
    var l = r.last_15m || {};
    c.appendChild(el("div", "last 15 minutes", "last-title"));
    var last = el("dl", null, "last");
    figure(last, "answered", l.requests || 0, "requests");
    figure(last, "failed attempts", l.failed_attempts || 0, "failed_attempts", l.failed_attempts > 0);
    figure(last, "client errors", l.client_errors || 0, "client_errors", l.client_errors > 0);
    figure(last, "stream errors", l.stream_errors || 0, "stream_errors", l.stream_errors > 0);
    figure(last, "hedged away", l.hedges || 0, "hedges", l.hedges > 0,
      "requests that had no first byte from this region after the hedge delay, so they also went to another region");
    figure(last, "hedges won", l.hedges_won || 0, "hedges_won", false, "hedges this region answered first for a slower region");
    figure(last, "resumed away", l.resumes || 0, "resumes", l.resumes > 0,
      "streams this region broke after they started that went on from another region: the client saw no error");
    figure(last, "resumes failed", l.resumes_failed || 0, "resumes_failed", l.resumes_failed > 0,
      "resumes of streams this region broke that did not work, one per region tried (the new answer differed, " +
      "that region failed or took too long, or no region was left): those clients got the error event");
    figure(last, "resumed here", l.resumed || 0, "resumed", false, "streams another region broke that this region continued");
    figure(last, "probes (failed)", (l.probes || 0) + " (" + (l.probes_failed || 0) + ")", "probes", l.probes_failed > 0,
      "active probes while the region was out of service (policy.breaker.probe_interval)");
    c.appendChild(last);
    var names = el("ul", null, "names");
    (r.deployments || []).forEach(function (d) {
      var s = d.name + " \u2192 " + d.deployment;
      if (d.cooling_until) s += " (cooling down after 429)";
      if (d.broken_until) s += " (broken: " + d.broken_by + ")";
      names.appendChild(el("li", s));
    });
    c.appendChild(names);
    return c;
  }

  // entra describes a region's Entra ID credential (regions[].entra): which identity and credential, when its token
  // expires (kept current by clocks), and, when something is wrong, what and how to fix it.
  function entra(e) {
    var p = el("p", null, "entra" + (e.state === "ok" ? "" : " bad"));
    p.setAttribute("data-field", "entra");
    var head = "Entra ID (" + (e.identity || "default credential") + (e.credential ? ", " + e.credential : "") + "): ";
    var state = {ok: "token valid", refresh_failing: "refresh failing, the current token stays in use",
      unavailable: "no valid token: its requests fail over"}[e.state] || e.state;
    p.appendChild(el("span", head + state));
    var exp = el("span");
    exp.setAttribute("data-field", "entra_expiry");
    if (e.expires_at) exp.setAttribute("data-at", e.expires_at);
    p.appendChild(exp);
    if (e.state !== "ok") {
      var why = [e.problem, e.cause].filter(Boolean).join(": ");
      if (why) p.appendChild(el("span", " \u00b7 " + why));
      if (e.fix) p.appendChild(el("span", " \u00b7 fix: " + e.fix));
    }
    return p;
  }

  // clocks updates what changes by the second: time in state, time until the next probe, the header's age.
  function clocks() {
    if (!view) return;
    var now = serverNow();
    (view.regions || []).forEach(function (r) {
      var c = document.querySelector('.card[data-region="' + CSS.escape(r.name) + '"]');
      if (!c) return;
      var since = c.querySelector('[data-field="since"]');
      since.textContent = r.state_since ? stateLabel(r.state) + " for " + dur(now - Date.parse(r.state_since)) : "";
      var probe = c.querySelector('[data-field="probe"]');
      var text = "";
      if (r.next_probe) {
        var left = Date.parse(r.next_probe) - now;
        text = left > 0 ? "next probe in " + dur(left + 999) : "next probe: now";
      } else if (r.open_until) {
        var trial = Date.parse(r.open_until) - now; // active probes are off: a client request is the trial
        text = trial > 0 ? "trial request in " + dur(trial + 999) : "the next request is the trial";
      }
      probe.textContent = (since.textContent && text ? " \u00b7 " : "") + text;
      var lp = c.querySelector('[data-field="last_probe"]');
      var p = r.last_probe, ptext = "";
      if (p && (r.state !== "healthy" || now - Date.parse(p.at) < 15 * 60 * 1000)) {
        ptext = "last probe " + dur(Math.max(0, now - Date.parse(p.at))) + " ago: " +
          (p.outcome === "ok" ? "answered in " + dur(p.latency_ms) : p.outcome + " after " + dur(p.latency_ms));
      }
      lp.textContent = ((since.textContent || text) && ptext ? " \u00b7 " : "") + ptext;
      var exp = c.querySelector('[data-field="entra_expiry"]');
      if (exp && exp.getAttribute("data-at")) {
        var ttl = Date.parse(exp.getAttribute("data-at")) - now;
        exp.textContent = ttl > 0 ? ", expires in " + dur(ttl) : ", expired " + dur(-ttl) + " ago";
      }
    });
    sharedClocks(now);
    $("updated").textContent = utc(Date.parse(view.now)) + " (" + dur(Date.now() - lastOK) + " ago)";
    stale();
  }

  function stale() {
    var banner = $("banner");
    var old = lastOK ? Date.now() - lastOK : 0;
    var isStale = failure !== "" || (lastOK && old > 3 * refresh + 2000);
    if (!isStale) { banner.hidden = true; return; }
    banner.hidden = false;
    if (!view) {
      banner.textContent = "Cannot load the gateway's state (" + (failure || "no answer") + "); retrying every " + dur(refresh) + ".";
      return;
    }
    banner.textContent = "Stale data: " + (failure ? "the last update failed (" + failure + ")" : "no update arrived") +
      "; showing the state of " + utc(Date.parse(view.now)) + ", " + dur(old) + " old. Retrying every " + dur(refresh) + ".";
  }

  // --- shared state (state.redis) ------------------------------------------------------------------------

  function badge(state, field) {
    var b = el("span", stateLabel(state), "badge " + (state || "unknown"));
    if (field) b.setAttribute("data-field", field);
    return b;
  }

  function cell(tr, content, field) {
    var td = el("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content === undefined ? "" : String(content);
    if (field) td.setAttribute("data-field", field);
    tr.appendChild(td);
    return td;
  }

  // renderShared draws what the replicas share through Redis: whether Redis answers, the manual switches in force
  // (who, why, when, where), and each replica's view of each region from its last heartbeat.
  function renderShared(v) {
    var sh = v.shared;
    $("shared-section").hidden = !sh;
    $("replica-line").hidden = !sh;
    if (!sh) return;
    $("replica").textContent = sh.replica;
    var redis = $("redis");
    redis.textContent = sh.up ? "redis up" : "redis DOWN";
    redis.className = "badge " + (sh.up ? "ready" : "notready");
    var status = $("shared-status");
    var sync = sh.last_sync ? "last exchange " + utc(Date.parse(sh.last_sync)) : "no exchange yet";
    if (sh.up) {
      var n = (sh.replicas || []).length;
      status.textContent = "Redis reachable: " + n + " replica" + (n === 1 ? "" : "s") +
        " share manual switches, trips and 429 cool-downs (" + sync + ").";
      status.className = "shared-status";
    } else {
      status.textContent = "Redis unreachable: each replica serves on its own state. A switch or a trip on another " +
        "replica is not known here until Redis returns (" + sync + (sh.error ? "; " + sh.error : "") + ").";
      status.className = "shared-status down";
    }
    var sw = document.querySelector("#switches tbody");
    sw.replaceChildren();
    (sh.switches || []).forEach(function (e) {
      var tr = el("tr");
      tr.setAttribute("data-region", e.region);
      cell(tr, e.region);
      var b = badge(e.disabled ? "disabled" : "healthy");
      b.textContent = e.disabled ? "disabled" : "enabled";
      cell(tr, b, "switch");
      cell(tr, e.by, "by");
      cell(tr, e.reason || "\u2013", "reason").className = "wrap";
      cell(tr, utc(Date.parse(e.at)).replace(" UTC", "")).title = new Date(e.at).toISOString();
      cell(tr, e.origin + (e.origin === sh.replica ? " (this one)" : ""), "origin");
      sw.appendChild(tr);
    });
    if (!(sh.switches || []).length) {
      var none = el("tr");
      var td = cell(none, "none: no region was disabled or enabled by hand");
      td.colSpan = 6;
      td.className = "wrap";
      sw.appendChild(none);
    }
    var names = (v.regions || []).map(function (r) { return r.name; });
    var head = document.querySelector("#replicas thead tr");
    head.replaceChildren(el("th", "replica"), el("th", "seen"));
    names.forEach(function (n) { head.appendChild(el("th", n)); });
    var rows = document.querySelector("#replicas tbody");
    rows.replaceChildren();
    (sh.replicas || []).forEach(function (rep) {
      var tr = el("tr", null, rep.self ? "self" : "");
      tr.setAttribute("data-replica", rep.name);
      tr.setAttribute("data-seen", rep.seen_at);
      cell(tr, rep.name + (rep.self ? " (this one)" : ""));
      cell(tr, "", "seen");
      var seen = {};
      (rep.regions || []).forEach(function (x) { seen[x.name] = x; });
      names.forEach(function (n) {
        var x = seen[n];
        var td = cell(tr, x ? badge(x.state) : "\u2013");
        td.setAttribute("data-region", n);
        if (x && x.open_until) td.title = "open until " + utc(Date.parse(x.open_until));
      });
      rows.appendChild(tr);
    });
    if (!sh.up) {
      var gone = el("tr");
      var g = cell(gone, "the other replicas' views are unknown while Redis is unreachable");
      g.colSpan = names.length + 2;
      g.className = "wrap";
      rows.appendChild(gone);
    }
  }

  // sharedClocks updates how long ago each replica was heard from.
  function sharedClocks(now) {
    document.querySelectorAll("#replicas tbody tr[data-replica]").forEach(function (tr) {
      var at = Date.parse(tr.getAttribute("data-seen"));
      tr.querySelector('[data-field="seen"]').textContent = tr.classList.contains("self") ? "now" : dur(Math.max(0, now - at)) + " ago";
    });
  }

  function render(v) {
    $("loading").hidden = true;
    ["regions-section", "charts-section", "events-section"].forEach(function (id) { $(id).hidden = false; });
    var ready = $("ready");
    ready.textContent = v.ready ? "ready" : "NOT READY: no region can serve";
    ready.className = "badge " + (v.ready ? "ready" : "notready");
    $("uptime").textContent = v.uptime;
    var cards = $("regions");
    cards.replaceChildren();
    (v.regions || []).forEach(function (r) { cards.appendChild(card(r)); });
    renderShared(v);
    var ev = document.querySelector("#events tbody");
    ev.replaceChildren();
    var events = v.events || [];
    if (events.length === 0) {
      var tr = el("tr");
      tr.appendChild(el("td", "\u2013"));
      tr.appendChild(el("td", "none yet"));
      tr.appendChild(el("td", ""));
      ev.appendChild(tr);
    }
    events.forEach(function (e) {
      var what;
      if (e.kind === "failover") {
        what = "failover " + e.from + " \u2192 " + e.to + " (" + e.reason + ")";
      } else if (e.kind === "resume") {
        what = e.reason === "ok" ? "stream resumed " + e.from + " \u2192 " + e.to
          : e.to ? "resume " + e.from + " \u2192 " + e.to + " failed (" + e.reason + ")"
          : "stream from " + e.from + " not resumed (" + e.reason + ")";
      } else {
        what = e.region + ": " + stateLabel(e.from) + " \u2192 " + stateLabel(e.to) + (e.reason ? " (" + e.reason + ")" : "");
      }
      var row = el("tr");
      row.appendChild(el("td", new Date(e.at).toISOString().replace("T", " ").slice(0, 23)));
      row.appendChild(el("td", what));
      row.appendChild(el("td", e.count, "num"));
      ev.appendChild(row);
    });
    clocks();
  }

  // --- charts --------------------------------------------------------------------------------------------

  var W = 360, H = 150, L = 40, R = 6, T = 8, B = 20;
  var span = 900; // seconds the charts cover

  function nice(max) {
    if (!(max > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(max)));
    var f = max / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }
  function label(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1).replace(/\.0$/, "") : String(Math.round(v * 100) / 100); }

  // chart draws lines: [{name, color, values (null: no point), dashed}] on the svg of data-chart=name.
  function chart(name, lines) {
    var s = document.querySelector('svg[data-chart="' + name + '"]');
    s.replaceChildren();
    var n = 0, max = 0;
    lines.forEach(function (l) {
      n = Math.max(n, l.values.length);
      l.values.forEach(function (v) { if (v !== null && v > max) max = v; });
    });
    max = nice(max);
    var x = function (i) { return L + (W - L - R) * (n <= 1 ? 1 : i / (n - 1)); };
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    [0, 0.5, 1].forEach(function (f) {
      s.appendChild(svg("line", { x1: L, x2: W - R, y1: y(f * max), y2: y(f * max), stroke: f ? "#eaeef2" : "#8c959f", "stroke-width": 1 }));
      var t = svg("text", { x: L - 4, y: y(f * max) + 4, "text-anchor": "end", "font-size": 10, fill: "#57606a" });
      t.textContent = label(f * max);
      s.appendChild(t);
    });
    var ago = function (f) { var s = Math.round(span * (1 - f)); return "-" + (s >= 60 ? dur(s * 1000).replace(/ /g, "") : s + "s"); };
    [[ago(0), 0], [ago(1 / 3), 1 / 3], [ago(2 / 3), 2 / 3], ["now", 1]].forEach(function (m) {
      var t = svg("text", { x: L + (W - L - R) * m[1], y: H - 5, "text-anchor": m[1] === 0 ? "start" : m[1] === 1 ? "end" : "middle", "font-size": 10, fill: "#57606a" });
      t.textContent = m[0];
      s.appendChild(t);
    });
    lines.forEach(function (l) {
      var pts = [];
      var flush = function () {
        if (pts.length === 1) pts.push(pts[0]);
        if (pts.length) {
          var p = svg("polyline", { points: pts.join(" "), fill: "none", stroke: l.color, "stroke-width": 1.6, "stroke-linejoin": "round" });
          if (l.dashed) p.setAttribute("stroke-dasharray", "4 3");
          p.setAttribute("data-region", l.name);
          p.setAttribute("data-max", String(Math.max.apply(null, l.values.map(function (v) { return v || 0; }))));
          s.appendChild(p);
        }
        pts = [];
      };
      l.values.forEach(function (v, i) {
        if (v === null) { flush(); return; }
        pts.push(x(i).toFixed(1) + "," + y(v).toFixed(1));
      });
      flush();
    });
  }

  // renderHistory draws the charts: the last 15 minutes, or the time since the gateway started if that is shorter.
  function renderHistory(h) {
    var step = h.step_seconds || 5;
    var n = (h.regions && h.regions[0] && h.regions[0].requests.length) || 0;
    var alive = Math.ceil((Date.parse(h.end) - Date.parse(h.started)) / 1000 / step) + 1;
    var from = Math.max(0, n - Math.max(alive, 12)); // at least a minute
    span = (n - from) * step;
    var crop = function (a) { return (a || []).slice(from); };
    var rate = function (a) { return crop(a).map(function (v) { return v / step; }); };
    var req = [], errs = [], lat = [];
    var legend = $("legend");
    legend.replaceChildren();
    (h.regions || []).forEach(function (s, i) {
      var c = color(i);
      req.push({ name: s.region, color: c, values: rate(s.requests) });
      errs.push({ name: s.region, color: c, values: rate(s.client_errors) });
      errs.push({ name: s.region + " failed attempts", color: c, values: rate(s.failed_attempts), dashed: true });
      var answered = crop(s.requests);
      lat.push({ name: s.region, color: c, values: crop(s.latency_ms).map(function (v, j) { return answered[j] ? v : null; }) });
      var k = el("span", s.region);
      k.style.setProperty("--c", c);
      legend.appendChild(k);
    });
    if (h.gateway) {
      errs.push({ name: "gateway", color: "#24292f", values: rate(h.gateway.client_errors) });
      var g = el("span", "gateway's own errors (503, 504, 429)");
      g.style.setProperty("--c", "#24292f");
      legend.appendChild(g);
    }
    var d = el("span", "failed attempts", "dashed");
    d.style.setProperty("--c", "#57606a");
    legend.appendChild(d);
    chart("requests", req);
    chart("errors", errs);
    chart("latency", lat);
  }

  // --- polling -------------------------------------------------------------------------------------------

  function get(path) {
    return fetch(path, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  function poll() {
    get("/admin/regions")
      .then(function (v) {
        view = v;
        lastOK = Date.now();
        failure = "";
        offset = Date.parse(v.now) - lastOK;
        render(v);
      })
      .catch(function (e) {
        failure = e && e.message ? e.message : "network error";
        if (!view) $("loading").textContent = "Loading the gateway's state\u2026 (the last try failed: " + failure + ")";
        stale();
      })
      .finally(function () { setTimeout(poll, refresh); });
  }

  function pollHistory() {
    get("/admin/history")
      .then(function (h) { hist = h; renderHistory(h); })
      .catch(function () { /* the regions poll reports failures */ })
      .finally(function () { setTimeout(pollHistory, historyEvery); });
  }

  poll();
  pollHistory();
  setInterval(clocks, 1000);
  setInterval(stale, 1000);
})();
