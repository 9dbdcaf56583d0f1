// Mail pages: live icons on the list, message and contact pages, and the composer's
// small HTML editor and live "what will not be tracked" note. No framework; every
// page works without this file (the composer falls back to a plain textarea).
(function () {
  "use strict";

  // --- Live refresh (B5): app.js fires mailbeacon:activity when an open or click
  // arrives; re-fetch this page and swap its #live-region, keeping keyboard focus.
  var region = document.getElementById("live-region");
  var refreshing = false;
  var again = false;

  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live-region");
        var current = document.getElementById("live-region");
        if (!fresh || !current) return;
        var focused = document.activeElement && document.activeElement.id;
        current.replaceWith(document.adoptNode(fresh));
        var target = focused && document.getElementById(focused);
        if (target) target.focus();
      })
      .catch(function () { /* offline for a moment: the next event tries again */ })
      .then(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }

  if (region) document.addEventListener("mailbeacon:activity", refresh);

  // --- Delivery progress: while a message shown here is queued or sending (its badge
  // carries data-progress), poll /mail/progress once a second and refresh the live
  // region whenever a status or a count of copies changes.
  function inFlight() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-progress]"));
  }

  function pollProgress() {
    var badges = inFlight();
    if (!badges.length) return;
    var query = badges.map(function (badge) {
      return "id=" + encodeURIComponent(badge.dataset.progress);
    }).join("&");
    fetch("/mail/progress?" + query, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        var changed = data.messages.some(function (item) {
          var badge = document.querySelector('[data-progress="' + item.id + '"]');
          return badge && (badge.dataset.status !== item.status || badge.dataset.done !== String(item.done));
        });
        if (changed) refresh();
      })
      .catch(function () { /* offline for a moment: poll again */ })
      .then(function () { setTimeout(pollProgress, 1000); });
  }

  if (region && inFlight().length) setTimeout(pollProgress, 1000);

  // --- Composer.
  var form = document.getElementById("compose");
  if (!form) return;
  var textarea = document.getElementById("body");
  var wrap = document.getElementById("editor-wrap");
  var editor = document.getElementById("editor");
  var preview = document.getElementById("tracking-preview");
  var BLOCKED = "script,style,iframe,object,embed,link,meta,base,form,input,button,textarea,select";

  function htmlMode() {
    var choice = form.querySelector('input[name="format"]:checked');
    return !choice || choice.value === "html";
  }

  // The user's own HTML, parsed inert and stripped of anything active before it
  // enters the live editor (a re-shown form must never run markup).
  function cleaned(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    doc.body.querySelectorAll(BLOCKED).forEach(function (node) { node.remove(); });
    doc.body.querySelectorAll("*").forEach(function (node) {
      Array.prototype.slice.call(node.attributes).forEach(function (attr) {
        var name = attr.name.toLowerCase();
        var value = attr.value.replace(/\s+/g, "").toLowerCase();
        if (name.indexOf("on") === 0 || /^(javascript|vbscript):/.test(value)) {
          node.removeAttribute(attr.name);
        }
      });
    });
    var fragment = document.createDocumentFragment();
    Array.prototype.slice.call(doc.body.childNodes).forEach(function (node) {
      fragment.appendChild(document.importNode(node, true));
    });
    return fragment;
  }

  // Plain text from the editor, keeping line breaks and link addresses.
  function plain(node) {
    var out = "";
    node.childNodes.forEach(function (child) {
      if (child.nodeType === Node.TEXT_NODE) { out += child.textContent; return; }
      if (child.nodeType !== Node.ELEMENT_NODE) return;
      var tag = child.tagName.toLowerCase();
      if (tag === "br") { out += "\n"; return; }
      var inner = plain(child);
      if (tag === "a" && child.getAttribute("href") && child.getAttribute("href") !== inner.trim()) {
        inner += " (" + child.getAttribute("href") + ")";
      }
      if (tag === "li") inner = "- " + inner;
      if (/^(p|div|li|ul|ol|h[1-6]|blockquote|pre)$/.test(tag)) inner = "\n" + inner + "\n";
      out += inner;
    });
    return out;
  }

  function paragraphs(text) {
    var fragment = document.createDocumentFragment();
    text.split(/\n{2,}/).forEach(function (block) {
      if (!block.trim()) return;
      var p = document.createElement("p");
      block.split("\n").forEach(function (line, index) {
        if (index) p.appendChild(document.createElement("br"));
        p.appendChild(document.createTextNode(line));
      });
      fragment.appendChild(p);
    });
    return fragment;
  }

  function editorHtml() {
    return plain(editor).trim() || editor.querySelector("img") ? editor.innerHTML : "";
  }

  function showMode(converting) {
    if (htmlMode()) {
      editor.replaceChildren(converting ? paragraphs(textarea.value) : cleaned(textarea.value));
      textarea.value = editorHtml();
      wrap.hidden = false;
      textarea.hidden = true;
    } else {
      if (converting) textarea.value = plain(editor).replace(/\n{3,}/g, "\n\n").trim();
      wrap.hidden = true;
      textarea.hidden = false;
    }
  }

  var timer = null;
  function schedulePreview() {
    if (!preview) return;
    clearTimeout(timer);
    timer = setTimeout(function () {
      fetch(form.dataset.previewUrl, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { "X-CSRF-Token": document.body.dataset.csrf || "" }
      })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) { if (html !== null) preview.innerHTML = html; })
        .catch(function () { /* keep the last note */ });
    }, 350);
  }

  wrap.querySelectorAll("[data-command]").forEach(function (button) {
    button.addEventListener("mousedown", function (event) { event.preventDefault(); });
    button.addEventListener("click", function () {
      var command = button.dataset.command;
      var value = null;
      editor.focus();
      if (command === "createLink") {
        value = window.prompt(button.dataset.prompt || "URL", "https://");
        if (!value || !/^(https?:\/\/|mailto:)/i.test(value.trim())) return;
        value = value.trim();
      }
      document.execCommand(command, false, value);
      textarea.value = editorHtml();
      schedulePreview();
    });
  });

  editor.addEventListener("input", function () {
    textarea.value = editorHtml();
    schedulePreview();
  });
  form.querySelectorAll('input[name="format"]').forEach(function (radio) {
    radio.addEventListener("change", function () { showMode(true); });
  });
  form.addEventListener("input", function (event) {
    if (event.target !== editor) schedulePreview();
  });
  form.addEventListener("change", schedulePreview);
  form.addEventListener("submit", function () {
    if (htmlMode()) textarea.value = editorHtml();
  });

  showMode(false);
})();
