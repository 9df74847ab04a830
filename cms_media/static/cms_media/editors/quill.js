/* cms_media adapter for Quill 2: the toolbar's image button opens the item selector
 * (item_selector.js) and inserts the chosen image with its alt text, size and document id.
 *
 *   cmsMediaQuill.init(textarea, {toolbar: [...]})  // returns the Quill instance
 *   <textarea data-cms-media-editor="quill">        // set up automatically when the page loads
 *
 * The textarea stays the form field: it is hidden, Quill edits a copy of its HTML, and the
 * HTML goes back into it as it changes and when the form is submitted.
 */
(function () {
  "use strict";

  var ID_PATTERN = /^[0-9]{1,18}$/;
  var SIZE_PATTERN = /^[0-9]{1,5}$/;
  // value key -> attribute. Quill's own image keeps only src (alt/width/height as loose
  // formats) and drops data-cms-media-id; this format keeps them all in its value.
  var IMAGE_ATTRIBUTES = {
    alt: "alt",
    width: "width",
    height: "height",
    title: "title",
    id: "data-cms-media-id"
  };
  var DEFAULT_TOOLBAR = [
    [{ header: [2, 3, 4, false] }],
    ["bold", "italic", "underline", "strike"],
    ["blockquote", "code-block"],
    [{ list: "ordered" }, { list: "bullet" }],
    ["link", "image"],
    ["clean"]
  ];
  var BUTTON_LABELS = {
    bold: "Bold",
    italic: "Italic",
    underline: "Underline",
    strike: "Strikethrough",
    blockquote: "Quote",
    "code-block": "Code block",
    link: "Link",
    image: "Insert image from Documents and Media",
    clean: "Clear formatting"
  };
  var registered = false;

  function validAttribute(key, value) {
    if (value === null || value === undefined) return false;
    if (key === "id") return ID_PATTERN.test(String(value));
    if (key === "width" || key === "height") return SIZE_PATTERN.test(String(value)) && Number(value) > 0;
    return typeof value === "string";
  }

  function registerImageFormat(Quill) {
    if (registered) return;
    var BaseImage = Quill.import("formats/image");

    class MediaImage extends BaseImage {
      static create(value) {
        var data = typeof value === "string" ? { src: value } : value || {};
        var node = super.create(String(data.src || ""));
        Object.keys(IMAGE_ATTRIBUTES).forEach(function (key) {
          if (validAttribute(key, data[key])) node.setAttribute(IMAGE_ATTRIBUTES[key], String(data[key]));
        });
        return node;
      }

      static value(node) {
        var data = { src: node.getAttribute("src") || "" };
        Object.keys(IMAGE_ATTRIBUTES).forEach(function (key) {
          var attribute = IMAGE_ATTRIBUTES[key];
          if (node.hasAttribute(attribute)) data[key] = node.getAttribute(attribute);
        });
        return data;
      }

      // Everything lives in the value, so nothing is duplicated as a format.
      static formats() {
        return {};
      }
    }

    Quill.register("formats/image", MediaImage, true);
    registered = true;
  }

  /** The value for one selector item, or null for anything that is not a usable image. */
  function imageValue(item) {
    if (!item || !ID_PATTERN.test(String(item.id)) || typeof item.url !== "string" || !item.url) {
      return null;
    }
    var value = { src: item.url, alt: item.decorative ? "" : String(item.alt || ""), id: String(item.id) };
    if (validAttribute("width", item.width)) value.width = String(item.width);
    if (validAttribute("height", item.height)) value.height = String(item.height);
    return value;
  }

  /** The editor's HTML for saving ("" when empty). */
  function htmlOf(quill) {
    var empty = quill.getText().trim() === "" && !quill.root.querySelector("img");
    if (empty) return "";
    // Quill 2.0.3's getSemanticHTML writes every space of text as &nbsp; (attribute values
    // are left alone), which would stop paragraphs from wrapping; turn them back.
    return quill.getSemanticHTML().replace(/&nbsp;/g, " ");
  }

  function labelToolbar(quill, textarea) {
    var toolbar = quill.getModule("toolbar");
    if (!toolbar || !toolbar.container) return;
    var container = toolbar.container;
    container.setAttribute("role", "toolbar");
    container.setAttribute("aria-label", "Formatting");
    Array.prototype.forEach.call(container.querySelectorAll("button"), function (button) {
      var name = Array.prototype.map.call(button.classList, function (c) { return c.replace(/^ql-/, ""); })
        .filter(function (c) { return BUTTON_LABELS[c] || c === "list"; })[0];
      if (!name) return;
      var label = name === "list"
        ? (button.value === "ordered" ? "Numbered list" : "Bulleted list")
        : BUTTON_LABELS[name];
      button.setAttribute("aria-label", label);
      button.setAttribute("title", label);
    });
    Array.prototype.forEach.call(container.querySelectorAll(".ql-header .ql-picker-label"), function (el) {
      el.setAttribute("aria-label", "Text style");
    });
    var root = quill.root;
    root.setAttribute("role", "textbox");
    root.setAttribute("aria-multiline", "true");
    var label = textarea.id && document.querySelector('label[for="' + textarea.id + '"]');
    if (label) {
      if (!label.id) label.id = textarea.id + "-label";
      root.setAttribute("aria-labelledby", label.id);
      label.addEventListener("click", function () { quill.focus(); });
    }
  }

  function init(target, options) {
    options = options || {};
    var Quill = window.Quill;
    if (!Quill) throw new Error("cmsMediaQuill.init: load quill.js first");
    var textarea = typeof target === "string" ? document.querySelector(target) : target;
    if (!textarea) throw new Error("cmsMediaQuill.init: no element for " + target);
    registerImageFormat(Quill);

    var holder = document.createElement("div");
    holder.className = "cm-quill";
    var editorElement = document.createElement("div");
    editorElement.className = "cm-quill-editor";
    var status = document.createElement("p");
    status.className = "cm-quill-status";
    status.setAttribute("role", "status");
    holder.appendChild(editorElement);
    holder.appendChild(status);
    textarea.parentNode.insertBefore(holder, textarea.nextSibling);

    function say(text) { status.textContent = text; }

    var quill = new Quill(editorElement, {
      theme: "snow",
      placeholder: options.placeholder || textarea.getAttribute("placeholder") || "",
      modules: {
        toolbar: {
          container: options.toolbar || DEFAULT_TOOLBAR,
          handlers: { image: function () { chooseImage(); } }
        },
        // Dropped or pasted files would become data: URLs, which are never saved.
        uploader: {
          handler: function () {
            say("To add a picture, use the image button: it uploads to Documents and Media.");
          }
        }
      }
    });

    // The stored HTML was cleaned on the server; convert() parses it in an inert document.
    if (textarea.value) {
      quill.setContents(quill.clipboard.convert({ html: textarea.value }), Quill.sources.SILENT);
      quill.history.clear();
    }
    textarea.hidden = true;
    labelToolbar(quill, textarea);

    function sync() { textarea.value = htmlOf(quill); }
    quill.on(Quill.events.TEXT_CHANGE, sync);
    if (textarea.form) textarea.form.addEventListener("submit", sync);

    function chooseImage() {
      var api = window.cmsMedia;
      if (!api || typeof api.openItemSelector !== "function") {
        say("The image selector is not available on this page.");
        return;
      }
      var range = quill.getSelection(true);
      var index = range ? range.index : quill.getLength() - 1;
      api.openItemSelector({
        multiple: false,
        onSelect: function (items) {
          var values = (Array.isArray(items) ? items : [items]).map(imageValue).filter(Boolean);
          quill.focus();
          values.forEach(function (value, offset) {
            quill.insertEmbed(index + offset, "image", value, Quill.sources.USER);
          });
          quill.setSelection(index + values.length, Quill.sources.SILENT);
          if (values.length) say(values.length === 1 ? "Image inserted." : values.length + " images inserted.");
        },
        onCancel: function () {
          quill.focus();
          quill.setSelection(index, Quill.sources.SILENT);
        }
      });
    }

    quill.cmsMediaChooseImage = chooseImage;
    return quill;
  }

  function initAll() {
    var fields = document.querySelectorAll('textarea[data-cms-media-editor="quill"]');
    Array.prototype.forEach.call(fields, function (field) { field.cmsMediaQuill = init(field); });
  }

  window.cmsMediaQuill = { init: init, imageValue: imageValue, htmlOf: htmlOf };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", initAll);
  } else {
    initAll();
  }
})();
