/* cms_media adapter for TinyMCE 8: an "Insert image from Documents and Media" button and the
 * image dialog's browse button, both answered by the item selector (item_selector.js).
 *
 *   cmsMediaTinyMCE.init("#body", {height: 480})   // or an element; returns tinymce's promise
 *   <textarea data-cms-media-editor="tinymce">      // set up automatically when the page loads
 *
 * The adapter is thin on purpose: choosing, alt text and size are the selector's job; this file
 * only turns the selector's items into <img> elements with data-cms-media-id.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  // The vendored TinyMCE lives beside this file: static/vendor/tinymce.
  var DEFAULT_BASE_URL = script && script.src
    ? new URL("../../vendor/tinymce", script.src).href
    : null;
  var ID_PATTERN = /^[0-9]{1,18}$/;
  var SIZE_PATTERN = /^[0-9]{1,5}$/;

  function selectorApi() {
    var api = window.cmsMedia;
    return api && typeof api.openItemSelector === "function" ? api : null;
  }

  /** Attributes for one selector item, or null for anything that is not a usable image. */
  function imageAttributes(item) {
    if (!item || !ID_PATTERN.test(String(item.id)) || typeof item.url !== "string" || !item.url) {
      return null;
    }
    var attrs = {
      src: item.url,
      // Decorative images get an empty alt so screen readers skip them.
      alt: item.decorative ? "" : String(item.alt || ""),
      "data-cms-media-id": String(item.id)
    };
    if (SIZE_PATTERN.test(String(item.width)) && Number(item.width) > 0) attrs.width = String(item.width);
    if (SIZE_PATTERN.test(String(item.height)) && Number(item.height) > 0) attrs.height = String(item.height);
    return attrs;
  }

  function notify(editor, text) {
    editor.notificationManager.open({ text: text, type: "error", timeout: 6000 });
  }

  /** Open the selector; ``onItems`` gets the usable items. Focus goes back to the caret in
   * the editor, or (``fromDialog``) stays with the dialog's browse button, where the closing
   * selector returns it. */
  function choose(editor, onItems, fromDialog) {
    var api = selectorApi();
    if (!api) {
      notify(editor, "The image selector is not available on this page.");
      return;
    }
    var bookmark = fromDialog ? null : editor.selection.getBookmark(2, true);
    function backToEditor() {
      if (fromDialog) return;
      editor.focus();
      if (bookmark) editor.selection.moveToBookmark(bookmark);
    }
    api.openItemSelector({
      multiple: false,
      onSelect: function (items) {
        backToEditor();
        var usable = (Array.isArray(items) ? items : [items]).map(imageAttributes).filter(Boolean);
        if (usable.length) onItems(usable);
      },
      onCancel: backToEditor
    });
  }

  /** The plugin part: the toolbar button, the dialog's browse button, and data-cms-media-id
   * kept in step with src (set for images picked through the dialog, dropped when someone
   * points an image at another address by hand). */
  function setup(editor) {
    var knownIds = Object.create(null); // src -> document id

    editor.ui.registry.addButton("cmsmediaimage", {
      icon: "image",
      tooltip: "Insert image from Documents and Media",
      onAction: function () {
        choose(editor, function (items) {
          var html = items.map(function (attrs) {
            knownIds[attrs.src] = attrs["data-cms-media-id"];
            return editor.dom.createHTML("img", attrs);
          }).join(" ");
          editor.insertContent(html);
        });
      }
    });

    editor.on("PreInit", function () {
      editor.parser.addNodeFilter("img", function (nodes) {
        nodes.forEach(function (node) {
          var id = node.attr("data-cms-media-id");
          var src = node.attr("src");
          if (id && src && !(src in knownIds)) knownIds[src] = id;
          else if (!id && src && knownIds[src]) node.attr("data-cms-media-id", knownIds[src]);
        });
      });
      editor.serializer.addNodeFilter("img", function (nodes) {
        nodes.forEach(function (node) {
          var src = node.attr("src");
          var id = src ? knownIds[src] : null;
          node.attr("data-cms-media-id", id || null);
        });
      });
    });

    return knownIds;
  }

  function pickerFor(editor) {
    return function (callback, _value, meta) {
      if (meta.filetype !== "image") return;
      choose(editor, function (items) {
        var attrs = items[0];
        editor.cmsMediaKnownIds[attrs.src] = attrs["data-cms-media-id"];
        callback(attrs.src, { alt: attrs.alt, width: attrs.width || "", height: attrs.height || "" });
      }, true);
    };
  }

  function init(target, options) {
    options = options || {};
    var element = typeof target === "string" ? document.querySelector(target) : target;
    if (!element) throw new Error("cmsMediaTinyMCE.init: no element for " + target);
    if (!window.tinymce) throw new Error("cmsMediaTinyMCE.init: load tinymce.min.js first");
    var baseUrl = options.baseUrl || element.getAttribute("data-tinymce-base-url") || DEFAULT_BASE_URL;
    var extra = options.tinymce || {};
    var userSetup = extra.setup;
    var config = {
      target: element,
      license_key: "gpl",
      base_url: baseUrl,
      suffix: ".min",
      menubar: false,
      promotion: false,
      plugins: "image link lists",
      toolbar: "undo redo | blocks | bold italic | bullist numlist | link cmsmediaimage",
      block_formats: "Paragraph=p; Heading 2=h2; Heading 3=h3; Heading 4=h4; Preformatted=pre",
      // Only what the server keeps (cms_media.sanitize): the editor shows what will be saved.
      valid_elements:
        "p,br,h2,h3,h4,strong/b,em/i,u,s/strike,a[href|title],ul,ol,li,blockquote,code,pre," +
        "figure,figcaption,hr",
      extended_valid_elements: "img[src|alt|title|width|height|data-cms-media-id]",
      // Stable document URLs stay exactly as the selector gave them (never made relative).
      convert_urls: false,
      entity_encoding: "raw",
      link_target_list: false, // target is not kept; links get rel="noopener noreferrer"
      file_picker_types: "image",
      image_description: true,
      image_dimensions: true,
      // Pasted or dropped files would become data: URLs, which are never saved; images come
      // from Documents and Media instead.
      paste_data_images: false,
      block_unsupported_drop: true,
      content_style: "img { max-width: 100%; height: auto; }",
      height: options.height || 480,
      setup: function (editor) {
        editor.cmsMediaKnownIds = setup(editor);
        if (typeof userSetup === "function") userSetup(editor);
      }
    };
    Object.keys(extra).forEach(function (key) {
      if (key !== "setup") config[key] = extra[key];
    });
    // TinyMCE calls the picker with the editor as ``this``.
    config.file_picker_callback = extra.file_picker_callback || function (callback, value, meta) {
      pickerFor(this)(callback, value, meta);
    };
    return window.tinymce.init(config);
  }

  function initAll() {
    var fields = document.querySelectorAll('textarea[data-cms-media-editor="tinymce"]');
    Array.prototype.forEach.call(fields, function (field) {
      if (!field.id) field.id = "cms-media-tinymce-" + Math.random().toString(36).slice(2);
      init(field, { height: Number(field.getAttribute("data-editor-height")) || undefined });
    });
  }

  window.cmsMediaTinyMCE = { init: init, imageAttributes: imageAttributes };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", initAll);
  } else {
    initAll();
  }
})();
