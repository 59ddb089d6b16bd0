// Live job progress: polls /api/jobs/{id} for every job shown on the page until it ends.
(function () {
  "use strict";
  var TERMINAL = { succeeded: 1, failed: 1, cancelled: 1 };

  function setText(root, field, value) {
    var el = root.querySelector('[data-field="' + field + '"]');
    if (el) { el.textContent = value; }
    return el;
  }

  // counters and results as a person reads them (as phoneops.ui.render.human_pairs does on the server)
  function pairs(el, data) {
    if (!el || !data || typeof data !== "object" || !Object.keys(data).length) { return; }
    if (el.tagName !== "DL") { el.textContent = JSON.stringify(data, null, 2); return; }
    el.textContent = "";
    Object.keys(data).forEach(function (key) {
      var value = data[key], text;
      if (value === null || value === undefined) { text = "—"; }
      else if (typeof value === "boolean") { text = value ? "yes" : "no"; }
      else if (typeof value === "number") { text = value.toLocaleString("en-US", { maximumFractionDigits: 2 }); }
      else if (typeof value === "string") { text = value; }
      else { text = JSON.stringify(value); }
      var label = String(key).replace(/_/g, " ").trim();
      var dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = label.charAt(0).toUpperCase() + label.slice(1);
      dd.textContent = text;
      el.appendChild(dt); el.appendChild(dd);
    });
  }

  function update(root, job) {
    root.setAttribute("data-job-status", job.status);
    var badge = setText(root, "status", job.status);
    if (badge) { badge.className = "badge " + job.status; }
    var total = job.progress_total || 0;
    var pct = total ? Math.floor((job.progress_done * 100) / total) : (job.status === "succeeded" ? 100 : 0);
    var bar = root.querySelector(".progress");
    if (bar) {
      bar.setAttribute("aria-valuenow", String(pct));
      bar.querySelector(".bar").style.width = pct + "%";
      bar.querySelector(".label").textContent = job.progress_done + (total ? " / " + total : "") + " (" + pct + "%)";
    }
    setText(root, "message", job.message || "");
    var err = setText(root, "error", job.error || "");
    if (err) { err.hidden = !job.error; }
    setText(root, "attempts", String(job.attempts));
    if (job.finished_at) { setText(root, "finished", job.finished_at.replace("T", " ").slice(0, 19) + " UTC"); }
    pairs(root.querySelector('[data-field="counters"]'), job.counters);
    pairs(root.querySelector('[data-field="result"]'), job.result);
    root.dispatchEvent(new CustomEvent("job:update", { bubbles: true, detail: job }));
  }

  function follow(root) {
    var id = root.getAttribute("data-job-id");
    function tick() {
      if (TERMINAL[root.getAttribute("data-job-status")]) { return; }
      fetch("/api/jobs/" + encodeURIComponent(id), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (job) { if (job) { update(root, job); } })
        .catch(function () {})
        .then(function () { setTimeout(tick, 1000); });
    }
    tick();
  }

  window.phoneops = window.phoneops || {};
  window.phoneops.followJob = follow;
  window.phoneops.csrf = function () {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  };
  document.querySelectorAll("[data-job-id]").forEach(follow);

  // A part of a page that refreshes itself: [data-refresh="SECONDS"] (with an id) is fetched again from
  // the page's own address and replaced by the same part of the answer (the live events page).
  function refresh(el) {
    var every = parseFloat(el.getAttribute("data-refresh")) * 1000;
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(el.id);
          if (fresh) { el.innerHTML = fresh.innerHTML; }
        })
        .catch(function () {})
        .then(function () { setTimeout(tick, every); });
    }
    if (el.id && every > 0) { setTimeout(tick, every); }
  }
  document.querySelectorAll("[data-refresh]").forEach(refresh);
})();
