// The folder tree (templates/search/_tree_nodes.html): a branch's toggle loads its children once (htmx,
// hx-trigger "click once") and then only shows or hides them; the branch listed on the right is marked.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest(".tree-toggle");
    if (toggle) {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      const children = toggle.parentElement.querySelector(":scope > .tree-children");
      if (children) children.hidden = !open;
      return;
    }
    const name = event.target.closest(".tree-name");
    if (name) {
      document.querySelectorAll(".tree-name[aria-current]").forEach(function (el) { el.removeAttribute("aria-current"); });
      name.setAttribute("aria-current", "true");
    }
  });
})();
