// The alert bell (templates/alerts/_bell.html): opening it loads the list of open alerts; the count is
// refreshed every minute from the API while the page is open.
(function () {
  "use strict";
  const REFRESH_MS = 60000;

  function bell() { return document.querySelector("[data-alert-bell]"); }

  function loadPanel(root) {
    const panel = root.querySelector("[data-alert-panel]");
    const url = panel.dataset.src + "?next=" + encodeURIComponent(window.location.pathname + window.location.search);
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) { panel.innerHTML = html; })
      .catch(function () { /* the panel keeps its link to the alerts page */ });
  }

  function refreshCount(root) {
    const panel = root.querySelector("[data-alert-panel]");
    const badge = root.querySelector("[data-alert-count]");
    fetch(panel.dataset.api, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (data) {
        badge.textContent = String(data.count);
        badge.classList.toggle("alert-count-none", data.count === 0);
        root.querySelector("summary").setAttribute("aria-label", "Alerts: " + data.count + " open");
      })
      .catch(function () { /* keep the last count */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const root = bell();
    if (!root) return;
    root.addEventListener("toggle", function () { if (root.open) loadPanel(root); });
    window.setInterval(function () { if (!document.hidden) refreshCount(root); }, REFRESH_MS);
  });
})();
