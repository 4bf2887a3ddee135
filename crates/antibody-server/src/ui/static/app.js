// The dashboard's one script: live updates. It subscribes to /ui/stream (the tenant's
// /v1/stream over the session cookie), lists what arrives, and re-renders the page's main
// content from the server when something it shows changed (the event kinds the page lists
// in `data-live`), at most once a second, unless the person is typing in a form.
// Everything works without it; nothing here reads or stores a key.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !main.dataset.live) return;
  var feed = document.getElementById("feed");
  var status = document.getElementById("live");
  var refreshBtn = document.getElementById("refresh");
  var watched = main.dataset.live.split(" ");
  var dirty = false, pending = null, last = 0;

  main.addEventListener("input", function () { dirty = true; });
  refreshBtn.addEventListener("click", function () { dirty = false; refresh(); });

  function summary(kind, data) {
    try {
      var d = JSON.parse(data);
      var parts = [kind];
      ["entity", "kind", "status", "state", "id", "subject"].forEach(function (k) {
        if (typeof d[k] === "string") parts.push(k + "=" + d[k]);
      });
      return parts.join(" ");
    } catch (e) { return kind; }
  }

  function note(text) {
    var li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + " " + text;
    feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > 50) feed.removeChild(feed.lastChild);
  }

  function editing() {
    var a = document.activeElement;
    return dirty || (a && main.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName));
  }

  function refresh() {
    pending = null;
    last = Date.now();
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("status " + r.status); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var next = doc.getElementById("main");
        if (!next) return;
        main.replaceChildren.apply(main, Array.prototype.slice.call(next.childNodes).map(function (n) {
          return document.adoptNode(n);
        }));
        refreshBtn.hidden = true;
        document.dispatchEvent(new CustomEvent("antibody:refreshed"));
      })
      .catch(function () { refreshBtn.hidden = false; });
  }

  function changed() {
    if (editing()) { refreshBtn.hidden = false; return; }
    if (pending) return;
    // At most one re-render a second, however busy the stream.
    pending = setTimeout(refresh, Math.max(0, 1000 - (Date.now() - last)));
  }

  var es = new EventSource("/ui/stream");
  es.onopen = function () { status.textContent = "live"; status.classList.add("on"); };
  es.onerror = function () { status.textContent = "reconnecting"; status.classList.remove("on"); };
  ["finding", "incident", "action", "state", "escalation", "notification", "lagged"].forEach(function (kind) {
    es.addEventListener(kind, function (ev) {
      note(summary(kind, ev.data));
      if (watched.indexOf(kind) >= 0) changed();
    });
  });

  // Overview: events/s from the public /metrics counter, sampled every 5 s.
  var prev = null, rate = null;
  document.addEventListener("antibody:refreshed", function () {
    var eps = document.getElementById("eps");
    if (eps && rate !== null) eps.textContent = rate;
  });
  function sample() {
    var eps = document.getElementById("eps");
    if (!eps) return;
    fetch("/metrics", { credentials: "omit" }).then(function (r) { return r.text(); }).then(function (t) {
      var m = /^antibody_events_accepted_total (\d+)/m.exec(t);
      if (!m) return;
      var now = { n: Number(m[1]), t: Date.now() };
      if (prev && now.t > prev.t) {
        rate = ((now.n - prev.n) * 1000 / (now.t - prev.t)).toFixed(1);
        eps.textContent = rate;
      }
      prev = now;
    }).catch(function () {});
  }
  sample();
  setTimeout(sample, 1000);
  setInterval(sample, 5000);
})();
