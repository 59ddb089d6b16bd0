// Cleaning file page: when the run being watched ends, reload once to show its stats and downloads.
(function () {
  "use strict";
  var TERMINAL = { succeeded: 1, failed: 1, cancelled: 1 };
  document.addEventListener("job:update", function (event) {
    var root = event.target;
    if (!root || !root.hasAttribute || !root.hasAttribute("data-reload-on-end")) { return; }
    if (TERMINAL[event.detail.status] && !root.hasAttribute("data-reloading")) {
      root.setAttribute("data-reloading", "1");
      setTimeout(function () { window.location.reload(); }, 300);
    }
  });
})();
