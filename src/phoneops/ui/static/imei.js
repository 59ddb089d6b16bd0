// IMEI batch page: keeps the summary table in step with the live job (app.js polls the job and emits
// "job:update"); when the job ends, the batch's final summary comes from the API and the orders table
// is refreshed from the page itself (no reload).
(function () {
  "use strict";
  var TERMINAL = { succeeded: 1, failed: 1, cancelled: 1 };
  var BADGES = { done: "succeeded", failed: "failed", cancelled: "failed", queued: "queued", running: "running", waiting: "queued" };

  function money(value) {
    var n = Number(value || 0);
    return "$" + n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function set(root, name, value) {
    var el = root.querySelector('[data-counter="' + name + '"]');
    if (el && value !== undefined && value !== null) { el.textContent = name === "spend" ? money(value) : String(value); }
  }

  function fromSummary(root, s) {
    ["placed", "duplicates", "duplicates_at_provider", "invalid", "failed", "needs_review", "spend"].forEach(function (k) {
      set(root, k, s[k]);
    });
    var badge = root.querySelector('[data-field="batch-status"]');
    if (badge && s.status) { badge.textContent = s.status; badge.className = "badge " + (BADGES[s.status] || s.status); }
  }

  function refreshOrders() {
    var target = document.querySelector("[data-batch-orders]");
    if (!target) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-batch-orders]");
        if (fresh) { target.innerHTML = fresh.innerHTML; }
      })
      .catch(function () {});
  }

  document.addEventListener("job:update", function (event) {
    var root = event.target.closest ? event.target.closest("[data-imei-batch]") : null;
    if (!root) { return; }
    var c = event.detail.counters || {};
    set(root, "placed", c.placed);
    set(root, "failed", c.failed);
    set(root, "needs_review", c.needs_review);
    set(root, "spend", c.spend);
    set(root, "duplicates_at_provider", c.duplicates);
    if (TERMINAL[event.detail.status] && !root.getAttribute("data-final")) {
      root.setAttribute("data-final", "1");
      fetch("/api/imei/batches/" + encodeURIComponent(root.getAttribute("data-imei-batch")),
            { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (batch) { if (batch) { fromSummary(root, batch.summary); } })
        .catch(function () {});
      refreshOrders();
    }
  });
})();
