// flowplane ui: draws the run's DAG with dagre, and refreshes live pages in place.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function countsLine(s) {
    if (!s.tasks) return "not started";
    if (s.tasks === 1) return s.status;
    var parts = [s.done + " done"];
    if (s.running) parts.push(s.running + " running");
    if (s.failed) parts.push(s.failed + " failed");
    return s.tasks + " tasks: " + parts.join(" / ");
  }

  function drawDag() {
    var data = document.getElementById("dag-data");
    var svg = document.getElementById("dag");
    if (!data || !svg || typeof dagre === "undefined") return;
    var steps = JSON.parse(data.textContent);
    var g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 22, ranksep: 46, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(function () { return {}; });
    var names = {};
    steps.forEach(function (s) {
      names[s.name] = true;
      var lines = [s.name, countsLine(s)];
      if (s.foreach_width !== null) lines.push("foreach × " + s.foreach_width);
      var width = Math.max.apply(null, lines.map(function (l) { return l.length * 7; })) + 28;
      g.setNode(s.name, { width: Math.max(width, 110), height: 18 * lines.length + 16, step: s, lines: lines });
    });
    steps.forEach(function (s) {
      s.out.forEach(function (t) { if (names[t]) g.setEdge(s.name, t); });
    });
    dagre.layout(g);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var size = g.graph();
    svg.setAttribute("width", size.width);
    svg.setAttribute("height", size.height);
    svg.setAttribute("viewBox", "0 0 " + size.width + " " + size.height);
    var defs = el("defs", {}, svg);
    var marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa5b1" }, marker);
    g.edges().forEach(function (e) {
      var pts = g.edge(e).points;
      var d = "M" + pts.map(function (p) { return p.x + "," + p.y; }).join(" L");
      el("path", { d: d, "class": "edge", "marker-end": "url(#arrow)" }, svg);
    });
    g.nodes().forEach(function (name) {
      var n = g.node(name);
      var s = n.step;
      var holder = svg;
      if (s.first_task) {
        holder = el("a", { href: location.pathname.replace(/\/$/, "") + "/steps/" + encodeURIComponent(s.name) + "/tasks/" + encodeURIComponent(s.first_task) }, svg);
      }
      var grp = el("g", { "class": "node " + s.status.replace(" ", "-"), "data-step": s.name, "data-status": s.status,
                          transform: "translate(" + (n.x - n.width / 2) + "," + (n.y - n.height / 2) + ")" }, holder);
      el("rect", { width: n.width, height: n.height }, grp);
      n.lines.forEach(function (line, i) {
        var t = el("text", { x: n.width / 2, y: 22 + i * 18, "class": i === 0 ? "name" : "counts" }, grp);
        t.textContent = line;
      });
      var title = el("title", {}, grp);
      title.textContent = s.name + " (" + (s.type || "step") + "): " + countsLine(s);
    });
  }

  function atBottom(node) { return node.scrollHeight - node.scrollTop - node.clientHeight < 24; }

  function refresh() {
    fetch(location.href, { headers: { "X-Flowplane-Refresh": "1" }, cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (old) {
          var fresh = doc.getElementById(old.id);
          if (!fresh) return;
          var follow = old.hasAttribute("data-follow") && atBottom(old);
          if (old.innerHTML !== fresh.innerHTML) old.innerHTML = fresh.innerHTML;
          if (follow) old.scrollTop = old.scrollHeight;
        });
        drawDag();
        var ms = doc.body.getAttribute("data-live-ms");
        if (ms) { setTimeout(refresh, +ms); } else { document.body.removeAttribute("data-live-ms"); }
      })
      .catch(function () { setTimeout(refresh, 5000); });
  }

  document.querySelectorAll("[data-follow]").forEach(function (n) { n.scrollTop = n.scrollHeight; });
  drawDag();
  var ms = document.body.getAttribute("data-live-ms");
  if (ms) setTimeout(refresh, +ms);
})();
