// The bell of alerts and hand-offs (templates/alerts/_bell.html): opening it loads the list of open ones
// (a fragment that also carries their count); the count is refreshed every minute while the page is open.
(function () {
  "use strict";
  const REFRESH_MS = 60000;

  function fragment(root) {
    const panel = root.querySelector("[data-bell-panel]");
    const url = panel.dataset.src + "?next=" + encodeURIComponent(window.location.pathname + window.location.search);
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) { return new DOMParser().parseFromString(html, "text/html"); });
  }

  function showCount(root, doc) {
    const counted = doc.querySelector("[data-open-count]");
    if (!counted) return;
    const count = Number(counted.dataset.openCount);
    const badge = root.querySelector("[data-bell-count]");
    badge.textContent = String(count);
    badge.classList.toggle("bell-count-none", count === 0);
    root.querySelector("summary").setAttribute("aria-label", "Alerts: " + count + " open");
  }

  function open(root) {
    fragment(root).then(function (doc) {
      const panel = root.querySelector("[data-bell-panel]");
      panel.replaceChildren.apply(panel, Array.from(doc.body.childNodes));
      showCount(root, panel.ownerDocument);
    }).catch(function () { /* the panel keeps its link to the list */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const root = document.querySelector("[data-bell]");
    if (!root) return;
    root.addEventListener("toggle", function () { if (root.open) open(root); });
    window.setInterval(function () {
      if (document.hidden || root.open) return;
      fragment(root).then(function (doc) { showCount(root, doc); }).catch(function () { /* keep the last count */ });
    }, REFRESH_MS);
  });
})();
