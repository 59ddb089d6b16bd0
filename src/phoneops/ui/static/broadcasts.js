// Live broadcasts: today's broadcasts arrive as server-sent events from /api/broadcasts/live and are shown
// grouped by list (the name before `_chunk`), newest first. Typing in the filter restarts the stream.
(function () {
  "use strict";
  var root = document.querySelector("[data-live]");
  if (!root) { return; }
  var groupsBox = root.querySelector("[data-live-groups]");
  var stateEl = root.querySelector("[data-live-state]");
  var errorEl = root.querySelector("[data-live-error]");
  var searchEl = root.querySelector("[data-live-search]");
  var every = parseFloat(root.getAttribute("data-live-every") || "30");
  var source = null;
  var reopen = null;
  var COLUMNS = ["name", "sent", "status", "price", "recipients", "clicks", "ctr", "delivery"];

  function text(el, value) { el.textContent = value === null || value === undefined ? "" : String(value); }

  function state(message) { text(stateEl, message); }

  function clear() {
    groupsBox.innerHTML = "";
    var empty = document.createElement("p");
    empty.className = "muted";
    empty.setAttribute("data-live-empty", "");
    empty.textContent = "No broadcast yet.";
    groupsBox.appendChild(empty);
  }

  function findBy(attr, value) {
    var nodes = groupsBox.querySelectorAll("[" + attr + "]");
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].getAttribute(attr) === value) { return nodes[i]; }
    }
    return null;
  }

  function groupSection(name) {
    var section = findBy("data-group", name);
    if (section) { return section; }
    var empty = groupsBox.querySelector("[data-live-empty]");
    if (empty) { empty.remove(); }
    section = document.createElement("section");
    section.className = "live-group";
    section.setAttribute("data-group", name);
    var title = document.createElement("h3");
    var label = document.createElement("span");
    label.setAttribute("data-field", "group-name");
    text(label, name || "(no name)");
    var totals = document.createElement("span");
    totals.className = "small muted";
    totals.setAttribute("data-field", "group-totals");
    title.appendChild(label);
    title.appendChild(document.createTextNode(" "));
    title.appendChild(totals);
    section.appendChild(title);
    var wrap = document.createElement("div");
    wrap.className = "table-wrap";
    var table = document.createElement("table");
    table.className = "table";
    var head = document.createElement("tr");
    ["Broadcast", "Sent (UTC)", "Status", "Price", "Recipients", "Clicks (unique / total)", "CTR",
      "Delivered / sent / undelivered / rejected"].forEach(function (h) {
      var th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    });
    var thead = document.createElement("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    table.appendChild(document.createElement("tbody"));
    wrap.appendChild(table);
    section.appendChild(wrap);
    section.setAttribute("data-newest", "");
    groupsBox.appendChild(section);
    return section;
  }

  function sortGroups() {
    var sections = Array.prototype.slice.call(groupsBox.querySelectorAll("section[data-group]"));
    sections.sort(function (a, b) {
      return (b.getAttribute("data-newest") || "").localeCompare(a.getAttribute("data-newest") || "");
    });
    sections.forEach(function (s) { groupsBox.appendChild(s); });
  }

  function showRow(row) {
    var section = groupSection(row.group);
    var body = section.querySelector("tbody");
    var tr = findBy("data-broadcast", String(row.id));
    if (!tr) {
      tr = document.createElement("tr");
      tr.setAttribute("data-broadcast", String(row.id));
      COLUMNS.forEach(function (c) {
        var td = document.createElement("td");
        td.setAttribute("data-field", c);
        tr.appendChild(td);
      });
      var before = null;
      var rows = body.querySelectorAll("tr");
      for (var i = 0; i < rows.length; i++) {
        if ((rows[i].getAttribute("data-sent") || "") < (row.send_date || "")) { before = rows[i]; break; }
      }
      body.insertBefore(tr, before);
    }
    tr.setAttribute("data-sent", row.send_date || "");
    tr.setAttribute("data-status", row.status);
    var cells = {};
    tr.querySelectorAll("td").forEach(function (td) { cells[td.getAttribute("data-field")] = td; });
    text(cells.name, row.name);
    text(cells.sent, row.send_date ? row.send_date.slice(11, 16) : "");
    text(cells.status, row.status);
    text(cells.price, row.price);
    text(cells.recipients, row.recipients);
    text(cells.clicks, row.unique_clicks + " / " + row.total_clicks);
    text(cells.ctr, row.ctr === null ? "" : row.ctr + "%");
    text(cells.delivery, row.delivered + " / " + row.sent + " / " + row.undelivered + " / " + row.rejected);
    if ((section.getAttribute("data-newest") || "") < (row.send_date || "")) {
      section.setAttribute("data-newest", row.send_date || "");
      sortGroups();
    }
  }

  function showGroup(total) {
    var section = groupSection(total.group);
    text(section.querySelector("[data-field=group-totals]"),
      total.broadcasts + " broadcast" + (total.broadcasts === 1 ? "" : "s") + " · " + total.recipients +
      " recipients · " + total.unique_clicks + " unique clicks" + (total.ctr ? " (CTR " + total.ctr + "%)" : "") +
      " · cost " + total.price);
  }

  function parse(e) { try { return JSON.parse(e.data); } catch (err) { return null; } }

  function open() {
    if (source) { source.close(); }
    if (reopen) { clearTimeout(reopen); reopen = null; }
    var params = new URLSearchParams();
    params.set("every", String(every));
    var search = searchEl ? searchEl.value.trim() : "";
    if (search) { params.set("search", search); }
    var url = root.getAttribute("data-live-url") + "?" + params.toString();
    state("connecting…");
    source = new EventSource(url, { withCredentials: true });
    source.addEventListener("row", function (e) { var row = parse(e); if (row) { showRow(row); } });
    source.addEventListener("group", function (e) { var total = parse(e); if (total) { showGroup(total); } });
    source.addEventListener("pass", function (e) {
      var info = parse(e) || {};
      errorEl.hidden = true;
      root.setAttribute("data-live-pass", String(info.pass || 0));
      state("updated " + (info.at || "").slice(11, 19) + " UTC · " + (info.broadcasts || 0) + " broadcasts");
    });
    source.addEventListener("error", function (e) {
      var info = e.data ? parse(e) : null;
      if (info && info.message) { errorEl.hidden = false; text(errorEl, info.message); }
      else if (source && source.readyState === EventSource.CLOSED) { state("disconnected"); }
    });
    source.addEventListener("done", function () {
      source.close();
      state("paused; refreshing shortly");
      reopen = setTimeout(open, every * 1000);
    });
  }

  var typing = null;
  if (searchEl) {
    searchEl.addEventListener("input", function () {
      if (typing) { clearTimeout(typing); }
      typing = setTimeout(function () { clear(); open(); }, 300);
    });
  }
  window.addEventListener("beforeunload", function () { if (source) { source.close(); } });
  open();
})();
