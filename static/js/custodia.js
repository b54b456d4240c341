// The pages' small behaviours, kept out of the templates: the Content-Security-Policy allows scripts from
// our own files only (no inline <script>, no on…= attributes), and style attributes not at all, so
// positions computed on the server arrive as data attributes and are applied here through the CSSOM.
(function () {
  "use strict";

  // <select data-autosubmit>: choosing an option submits its form (a member's role on the case page).
  document.addEventListener("change", function (event) {
    const select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.requestSubmit();
  });

  document.addEventListener("click", function (event) {
    // <input data-select-on-click>: one click selects the whole value (an issued link).
    const field = event.target.closest("input[data-select-on-click]");
    if (field) field.select();
    // <button data-copy-from="id">: copies the value of the element with that id.
    const button = event.target.closest("button[data-copy-from]");
    if (button) {
      const source = document.getElementById(button.dataset.copyFrom);
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.value).then(function () { button.textContent = "Copied"; });
      }
    }
  });

  // data-left / data-right (percentages): the timeline's axis labels.
  function place(root) {
    root.querySelectorAll("[data-left]").forEach(function (el) { el.style.left = el.dataset.left + "%"; });
    root.querySelectorAll("[data-right]").forEach(function (el) { el.style.right = el.dataset.right + "%"; });
  }
  document.addEventListener("DOMContentLoaded", function () { place(document); });
  document.addEventListener("htmx:load", function (event) { place(event.target); });
})();
