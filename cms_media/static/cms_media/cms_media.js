/* cms_media: dialogs, upload progress and library refresh. No build step, no framework. */
(function () {
  "use strict";

  function dialogFor(el) { return el.closest("dialog"); }

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open-dialog"));
      if (dialog && !dialog.open) {
        var menu = opener.closest("details.cm-menu");
        if (menu) menu.open = false;
        dialog.showModal();
        var first = dialog.querySelector("input:not([type=hidden]), textarea, select");
        if (first) first.focus();
      }
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer && dialogFor(closer)) dialogFor(closer).close();
  });

  // When the library changed, the dialog that caused it has done its job.
  document.body.addEventListener("cms-media:changed", function (event) {
    var source = event.detail && event.detail.elt;
    var dialog = source && source.closest ? dialogFor(source) : null;
    if (!dialog) dialog = document.querySelector("dialog.cm-dialog[open]");
    if (dialog) setTimeout(function () { dialog.close(); }, 600);
  });

  // Focus the first field of a dialog once htmx has put its content in.
  document.body.addEventListener("htmx:afterSettle", function (event) {
    var dialog = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("dialog[open]");
    if (!dialog || dialog.contains(document.activeElement) && document.activeElement !== dialog.querySelector(".cm-close")) return;
    var target = dialog.querySelector("[autofocus], textarea, input:not([type=hidden]), select");
    if (target) target.focus();
  });

  // Buttons that act on ticked candidates are enabled only while something is ticked.
  function updateSelectionButtons(form) {
    var ticked = form.querySelector("input[name=slot]:checked") !== null;
    form.querySelectorAll("[data-needs-selection]").forEach(function (button) { button.disabled = !ticked; });
  }
  document.addEventListener("change", function (event) {
    if (event.target.name === "slot" && event.target.form) updateSelectionButtons(event.target.form);
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    document.querySelectorAll("form.cm-batch-form").forEach(updateSelectionButtons);
  });

  // Live character counter for a textarea with data-counter="<id of the counter>".
  document.addEventListener("input", function (event) {
    var field = event.target;
    var counter = field.dataset && field.dataset.counter && document.getElementById(field.dataset.counter);
    if (!counter) return;
    counter.querySelector("span").textContent = field.value.length;
    var max = parseInt(field.getAttribute("maxlength"), 10);
    counter.classList.toggle("cm-over", max && field.value.length >= max);
  });

  // Upload progress for htmx multipart posts.
  document.body.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.target.closest && event.target.closest(".cm-upload-form");
    if (!form || !event.detail.lengthComputable) return;
    var bar = form.querySelector(".cm-progress");
    bar.hidden = false;
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  });

  // A failed request that htmx does not swap (network error, 5xx) still tells the user.
  document.body.addEventListener("htmx:responseError", function (event) {
    window.alert("The server could not complete that request (" + event.detail.xhr.status + "). Try again.");
  });
  document.body.addEventListener("htmx:sendError", function () {
    window.alert("The server could not be reached. Check your connection and try again.");
  });
})();
