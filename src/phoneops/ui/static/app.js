// Live job progress: polls /api/jobs/{id} for every job shown on the page until it ends.
(function () {
  "use strict";
  var TERMINAL = { succeeded: 1, failed: 1, cancelled: 1 };

  function setText(root, field, value) {
    var el = root.querySelector('[data-field="' + field + '"]');
    if (el) { el.textContent = value; }
    return el;
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
    var counters = root.querySelector('[data-field="counters"]');
    if (counters) { counters.textContent = JSON.stringify(job.counters, null, 2); }
    var result = root.querySelector('[data-field="result"]');
    if (result) { result.textContent = JSON.stringify(job.result, null, 2); }
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
})();
