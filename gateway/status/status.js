// Lifeline status page: polls /admin/regions (same origin, the status cookie authenticates) and renders it
// with textContent only, so nothing from the server is ever parsed as HTML.
(function () {
  "use strict";
  var refresh = Number(document.currentScript.getAttribute("data-refresh")) || 2000;
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function pct(x) { return (100 * (x || 0)).toFixed(1) + " %"; }
  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (c) { tr.appendChild(c); });
    return tr;
  }
  function render(v) {
    var body = document.querySelector("#regions tbody");
    body.replaceChildren();
    (v.regions || []).forEach(function (r) {
      var state = el("td"); state.appendChild(el("span", r.state, "state " + r.state));
      var share = el("td", "", "num");
      var bar = el("span", undefined, "bar"); bar.style.width = Math.round(80 * (r.share || 0)) + "px";
      share.appendChild(bar); share.appendChild(document.createTextNode(pct(r.share)));
      var names = (r.deployments || []).map(function (d) {
        var s = d.name + " \u2192 " + d.deployment;
        if (d.cooling_until) s += " (cooling down)";
        if (d.broken_until) s += " (broken: " + d.broken_by + ")";
        return s;
      }).join(", ");
      body.appendChild(row([el("td", r.name), state, el("td", r.priority, "num"), el("td", r.weight, "num"), share,
        el("td", pct(r.error_rate), "num"), el("td", r.attempts, "num"), el("td", r.latency_ms ? r.latency_ms.toFixed(1) + " ms" : "\u2014", "num"),
        el("td", r.in_flight, "num"), el("td", r.realtime_sessions || 0, "num"), el("td", names)]));
    });
    var ev = document.querySelector("#events tbody");
    ev.replaceChildren();
    var events = v.events || [];
    if (events.length === 0) ev.appendChild(row([el("td", "\u2014"), el("td", "none yet"), el("td", "")]));
    events.forEach(function (e) {
      var what = e.kind === "failover" ? "failover " + e.from + " \u2192 " + e.to + " (" + e.reason + ")"
        : e.region + ": " + e.from + " \u2192 " + e.to;
      ev.appendChild(row([el("td", new Date(e.at).toISOString().replace("T", " ").slice(0, 23)), el("td", what), el("td", e.count, "num")]));
    });
    document.getElementById("updated").textContent = new Date(v.now).toISOString().slice(11, 19) + " UTC";
    document.getElementById("ready").textContent = v.ready ? "ready" : "NOT READY: no region can serve";
    document.getElementById("uptime").textContent = v.uptime;
  }
  function poll() {
    fetch("/admin/regions", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (v) { document.getElementById("err").textContent = ""; render(v); })
      .catch(function (e) { document.getElementById("err").textContent = "\u00b7 update failed: " + e.message; })
      .finally(function () { setTimeout(poll, refresh); });
  }
  poll();
})();
