// The search page's keyboard and history (issue #20 item 9): j/k move through the hits, Enter opens the
// current one, t selects it and puts the cursor in the tag box; Back and Forward show the query of the URL.
(function () {
  "use strict";

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#results-table tbody tr, #results-table > li"));
  }

  function current() {
    return document.querySelector("#results-table .current");
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var at = all.indexOf(current());
    var next = all[Math.min(Math.max(at + step, 0), all.length - 1)];
    if (at < 0) next = all[0];
    all.forEach(function (row) { row.classList.remove("current"); row.removeAttribute("aria-current"); });
    next.classList.add("current");
    next.setAttribute("aria-current", "true");
    next.scrollIntoView({ block: "nearest" });
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
    var row = current();
    if (event.key === "j") { move(1); event.preventDefault(); }
    else if (event.key === "k") { move(-1); event.preventDefault(); }
    else if (event.key === "Enter" && row) {
      var link = row.querySelector("a[href]");
      if (link) { window.location.assign(link.getAttribute("href")); event.preventDefault(); }
    } else if (event.key === "t" && row) {
      var box = row.querySelector("input[type=checkbox][name=uids]");
      var tagName = document.getElementById("bulk-tag-name");
      if (box) box.checked = true;
      if (tagName) { tagName.focus(); event.preventDefault(); }
    }
  });

  // htmx restores a page from its history cache as it was drawn, with the box as it was typed into last;
  // the box shows the query of the URL instead, whichever way the page came back.
  function showQueryOfUrl() {
    var box = document.getElementById("q");
    if (box) box.value = new URLSearchParams(window.location.search).get("q") || "";
  }
  document.addEventListener("htmx:historyRestore", showQueryOfUrl);
  window.addEventListener("popstate", function () { window.setTimeout(showQueryOfUrl, 0); });
})();
