/* Inside the item selector: hand the chosen images to the page that opened it.
   The message goes only to the origin the server allowed (data-parent-origin). */
(function () {
  "use strict";

  function root() { return document.querySelector(".cm-selector"); }

  function tell(message) {
    var origin = root() && root().getAttribute("data-parent-origin");
    if (window.parent !== window && origin) {
      window.parent.postMessage(message, origin);
      return true;
    }
    return false;
  }

  function deliver() {
    var payload = document.getElementById("cm-selection");
    if (!payload) return;
    var items = JSON.parse(payload.textContent);
    if (!tell({ type: "cms-media:selected", items: items })) {
      var note = document.createElement("p");
      note.textContent = "Chosen. Open the selector from an editor to insert images.";
      payload.parentNode.appendChild(note);
    }
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-selector-cancel]")) tell({ type: "cms-media:cancel" });
    var tab = event.target.closest("[role=tab]");
    if (tab) {
      tab.parentNode.querySelectorAll("[role=tab]").forEach(function (other) {
        other.setAttribute("aria-selected", other === tab ? "true" : "false");
      });
    }
  });

  // Focus is inside the iframe, where the parent dialog never sees Escape: pass it on.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !event.defaultPrevented && !document.querySelector("dialog[open]")) {
      tell({ type: "cms-media:cancel" });
    }
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", deliver);
  else deliver();
})();
