// The pages' small behaviours, kept out of the templates: the Content-Security-Policy allows scripts from
// our own files only (no inline <script>, no on…= attributes), and style attributes not at all, so
// positions computed on the server arrive as data attributes and are applied here through the CSSOM.
(function () {
  "use strict";

  // <select data-autosubmit>: choosing an option submits its form (filters; never a change that needs a
  // confirmation: those use data-confirm below).
  document.addEventListener("change", function (event) {
    const select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.requestSubmit();
  });

  // <form data-confirm="question">: the one confirm step of destructive or consequential actions (remove a
  // member, change a role, deactivate a user, revoke a link). Submitting asks first in a modal dialog;
  // only "Confirm" sends the form. data-confirm-label names the button ("Remove", "Change role").
  let dialog = null;
  function confirmDialog() {
    if (dialog) return dialog;
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-dialog-text");
    const text = document.createElement("p");
    text.id = "confirm-dialog-text";
    const buttons = document.createElement("form");
    buttons.method = "dialog";
    buttons.className = "actions";
    const cancel = document.createElement("button");
    cancel.value = "cancel";
    cancel.textContent = "Cancel";
    const ok = document.createElement("button");
    ok.value = "confirm";
    ok.className = "primary danger";
    buttons.append(cancel, " ", ok);
    dialog.append(text, buttons);
    document.body.append(dialog);
    return dialog;
  }
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-confirm]");
    if (!form) return;
    if (form.dataset.confirmed === "yes") { delete form.dataset.confirmed; return; }
    event.preventDefault();
    const submitter = event.submitter || null;
    const box = confirmDialog();
    box.querySelector("p").textContent = form.dataset.confirm;
    const ok = box.querySelector("button[value=confirm]");
    ok.textContent = form.dataset.confirmLabel || "Confirm";
    box.returnValue = "";
    box.addEventListener("close", function once() {
      box.removeEventListener("close", once);
      if (box.returnValue === "confirm") {
        form.dataset.confirmed = "yes";
        form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
      }
    });
    box.showModal();
    box.querySelector("button[value=cancel]").focus();
  });

  // A form sent back with errors: the first field in error is scrolled into view and focused, so the
  // message beside it is what the person sees first (not a banner at the top of a long form).
  function showFirstError(root) {
    const field = root.querySelector("[aria-invalid=true]");
    const target = field || root.querySelector(".errorlist");
    if (!target) return;
    target.scrollIntoView({ block: "center" });
    if (field && typeof field.focus === "function") field.focus({ preventScroll: true });
  }

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

  document.addEventListener("DOMContentLoaded", function () { showFirstError(document); });
})();
