/* cms_media item selector: the JavaScript API rich-text editors call.

   cmsMedia.openItemSelector({
     multiple: false,               // may the user pick several images?
     onSelect: function (items) {}, // always an array of {id, url, alt, width, height, title, decorative}
     onCancel: function () {}
   });

   The selector runs in an <iframe> inside a <dialog>. Its answer arrives by postMessage and is
   accepted only from the selector's own origin and window, in the expected shape; nothing
   in a message is ever executed or inserted as HTML here. */
(function () {
  "use strict";

  var script = document.currentScript;
  var selectorUrl = script && script.getAttribute("data-selector-url");

  function cleanItem(raw, origin) {
    if (!raw || typeof raw !== "object") return null;
    var id = raw.id;
    if (typeof id !== "number" || !isFinite(id) || id <= 0 || Math.floor(id) !== id) return null;
    if (typeof raw.url !== "string") return null;
    var url;
    try { url = new URL(raw.url, origin); } catch (e) { return null; }
    if (url.origin !== origin || (url.protocol !== "http:" && url.protocol !== "https:")) return null;
    function text(value) { return typeof value === "string" ? value : ""; }
    function size(value) { return typeof value === "number" && value >= 0 && value < 100000 ? Math.round(value) : 0; }
    return {
      id: id,
      url: url.pathname + url.search,
      alt: text(raw.alt),
      title: text(raw.title),
      width: size(raw.width),
      height: size(raw.height),
      decorative: raw.decorative === true
    };
  }

  function openItemSelector(options) {
    options = options || {};
    if (!selectorUrl) throw new Error("cms_media: item_selector.js needs data-selector-url on its <script> tag");
    var src = new URL(selectorUrl, window.location.href);
    src.searchParams.set("origin", window.location.origin);
    if (options.multiple) src.searchParams.set("multiple", "1");

    var dialog = document.createElement("dialog");
    dialog.className = "cm-selector-dialog";
    dialog.setAttribute("aria-label", "Choose an image");
    var frame = document.createElement("iframe");
    frame.src = src.toString();
    frame.title = "Choose an image";
    frame.className = "cm-selector-frame";
    dialog.appendChild(frame);
    document.body.appendChild(dialog);

    var done = false;
    function finish(callback, value) {
      if (done) return;
      done = true;
      window.removeEventListener("message", onMessage);
      dialog.close();
      dialog.remove();
      if (typeof callback === "function") callback(value);
    }

    function onMessage(event) {
      if (event.origin !== src.origin || event.source !== frame.contentWindow) return;
      var data = event.data;
      if (!data || typeof data !== "object") return;
      if (data.type === "cms-media:cancel") return finish(options.onCancel);
      if (data.type !== "cms-media:selected" || !Array.isArray(data.items)) return;
      var items = data.items.map(function (item) { return cleanItem(item, src.origin); })
        .filter(function (item) { return item !== null; });
      if (!items.length) return;
      finish(options.onSelect, options.multiple ? items : items.slice(0, 1));
    }

    window.addEventListener("message", onMessage);
    dialog.addEventListener("cancel", function () { finish(options.onCancel); });
    dialog.showModal();
    return { close: function () { finish(options.onCancel); }, dialog: dialog, frame: frame };
  }

  // The dialog's own small stylesheet, beside this script (a <link>, so a strict
  // style-src CSP that allows our origin is enough).
  if (script && script.src) {
    var sheet = document.createElement("link");
    sheet.rel = "stylesheet";
    sheet.href = new URL("item_selector.css", script.src).toString();
    document.head.appendChild(sheet);
  }

  window.cmsMedia = window.cmsMedia || {};
  window.cmsMedia.openItemSelector = openItemSelector;
})();
