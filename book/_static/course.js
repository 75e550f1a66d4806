// Figures that the column shows smaller than they were drawn can be opened at full size: a click (or Enter)
// on such an image shows it at its natural width in an overlay that scrolls; a click, Escape or the close
// button hides it. Works for embedded (data:) images too, which a browser refuses to open as a page.
// Loaded on every page by _config.yml (sphinx.config.html_js_files).
(function () {
  "use strict";
  var SCALED = "course-zoomable";

  function overlay(image) {
    var backdrop = document.createElement("div");
    backdrop.className = "course-zoom-overlay";
    backdrop.setAttribute("role", "dialog");
    backdrop.setAttribute("aria-label", "figure at full size");
    var close = document.createElement("button");
    close.className = "course-zoom-close";
    close.type = "button";
    close.textContent = "\u00d7 close";
    var large = document.createElement("img");
    large.src = image.currentSrc || image.src;
    large.alt = image.alt || "";
    large.className = "course-zoom-image";
    backdrop.appendChild(close);
    backdrop.appendChild(large);
    function hide() {
      backdrop.remove();
      document.removeEventListener("keydown", onKey);
      image.focus();
    }
    function onKey(event) { if (event.key === "Escape") hide(); }
    backdrop.addEventListener("click", function (event) { if (event.target !== large) hide(); });
    document.addEventListener("keydown", onKey);
    document.body.appendChild(backdrop);
    close.focus();
  }

  function mark(image) {
    if (!image.naturalWidth || image.closest("a[href]")) return;
    var scaled = image.naturalWidth > image.clientWidth + 1;
    image.classList.toggle(SCALED, scaled);
    if (scaled && !image.dataset.courseZoom) {
      image.dataset.courseZoom = "1";
      image.tabIndex = 0;
      image.title = "Click to enlarge";
      image.addEventListener("click", function () { if (image.classList.contains(SCALED)) overlay(image); });
      image.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && image.classList.contains(SCALED)) overlay(image);
      });
    }
  }

  function markAll() {
    var article = document.querySelector(".bd-article") || document.body;
    article.querySelectorAll("img").forEach(function (image) {
      if (image.complete) mark(image); else image.addEventListener("load", function () { mark(image); });
    });
  }

  window.addEventListener("load", markAll);
  window.addEventListener("resize", markAll);
  // Widget outputs (ipywidgets' Output) are drawn after load by the widget manager.
  new MutationObserver(function (changes) {
    changes.forEach(function (change) {
      change.addedNodes.forEach(function (node) {
        if (node.nodeType !== 1) return;
        (node.tagName === "IMG" ? [node] : node.querySelectorAll("img")).forEach(function (image) {
          if (image.complete) mark(image); else image.addEventListener("load", function () { mark(image); });
        });
      });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
