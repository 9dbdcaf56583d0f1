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
        keepOpen(current, fresh);
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

  // A <details> the reader opened (folded machine events, repeats, the text version)
  // stays open when the region is swapped; they are matched by their class and place.
  function keepOpen(current, fresh) {
    function key(details, all) {
      var same = all.filter(function (other) { return other.className === details.className; });
      return details.className + "#" + same.indexOf(details);
    }
    var before = Array.prototype.slice.call(current.querySelectorAll("details"));
    var opened = {};
    before.forEach(function (details) { if (details.open) opened[key(details, before)] = true; });
    var after = Array.prototype.slice.call(fresh.querySelectorAll("details"));
    after.forEach(function (details) { if (opened[key(details, after)]) details.open = true; });
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
      var data = new FormData(form);
      data.delete("attachments");  // the note needs the text, never the files
      fetch(form.dataset.previewUrl, {
        method: "POST",
        body: data,
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
  // --- Too large (bug 1): the request limit answers a bare 413 and the draft is gone,
  // so the size is checked here first. Files are counted as chosen, text as UTF-8.
  var fileInput = document.getElementById("attachments");
  var tooLarge = document.getElementById("too-large");
  var sendButton = document.getElementById("send-button");

  function fileBytes() {
    var total = 0;
    if (fileInput && fileInput.files) {
      Array.prototype.forEach.call(fileInput.files, function (file) { total += file.size; });
    }
    return total;
  }

  function requestBytes() {
    var total = fileBytes();
    form.querySelectorAll("input[type=text], textarea, input[type=datetime-local]").forEach(function (field) {
      total += new Blob([field.value]).size + 200;
    });
    return total;
  }

  function fitsLimits() {
    var tooBig = fileBytes() > Number(form.dataset.maxAttachments) ||
      requestBytes() > Number(form.dataset.maxRequest);
    if (tooLarge) {
      tooLarge.hidden = !tooBig;
      if (tooBig) tooLarge.scrollIntoView({ block: "center" });
    }
    return !tooBig;
  }

  if (fileInput) fileInput.addEventListener("change", fitsLimits);

  // --- Addresses pasted one per line (bug 4): a text field drops line breaks, which
  // glued "anna@example.com" and "ben@example.com" into one bad address.
  form.querySelectorAll("[data-addresses]").forEach(function (input) {
    input.addEventListener("paste", function (event) {
      var text = event.clipboardData && event.clipboardData.getData("text");
      if (!text || !/[\r\n]/.test(text.trim())) return;
      event.preventDefault();
      var joined = text.trim().split(/\s*[\r\n]+\s*/).filter(Boolean).join(", ");
      var start = input.selectionStart || 0;
      var end = input.selectionEnd || 0;
      var before = input.value.slice(0, start);
      if (before.trim() && !/[,;]\s*$/.test(before)) joined = ", " + joined;
      input.value = before + joined + input.value.slice(end);
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
  });

  // --- Recipient autocomplete (B13): the user's contacts with names, in the shared
  // <datalist>; each suggestion completes the address being typed after the last comma.
  var suggestions = document.getElementById("contact-suggestions");
  var lookup = null;
  form.querySelectorAll("[data-addresses]").forEach(function (input) {
    input.addEventListener("input", function () {
      if (!suggestions || !form.dataset.contactsUrl) return;
      var value = input.value;
      var cut = Math.max(value.lastIndexOf(","), value.lastIndexOf(";"));
      var prefix = cut >= 0 ? value.slice(0, cut + 1) + " " : "";
      var typed = value.slice(cut + 1).trim();
      clearTimeout(lookup);
      if (typed.length < 1 || typed.indexOf("<") >= 0) return;
      lookup = setTimeout(function () {
        fetch(form.dataset.contactsUrl + "?q=" + encodeURIComponent(typed), {
          credentials: "same-origin", headers: { "Accept": "application/json" }
        })
          .then(function (response) { return response.ok ? response.json() : null; })
          .then(function (data) {
            if (!data) return;
            suggestions.replaceChildren();
            data.contacts.forEach(function (contact) {
              var option = document.createElement("option");
              option.value = prefix + contact.label;
              option.textContent = contact.name || contact.address;
              suggestions.appendChild(option);
            });
          })
          .catch(function () { /* no suggestions this time */ });
      }, 150);
    });
  });

  // --- Drafts that survive navigation (B13): the text fields are kept in this
  // browser's localStorage as the user types; a fresh composer offers to restore them.
  // (Chosen files cannot be kept by any page.) Sending clears the kept draft.
  var DRAFT_FIELDS = ["to", "cc", "bcc", "subject", "body", "send_at"];
  var draftKey = form.dataset.draftKey;
  var restoreBar = document.getElementById("draft-restore");
  var saveTimer = null;

  function storage() {
    try { return window.localStorage; } catch (error) { return null; }
  }

  function currentDraft() {
    if (htmlMode()) textarea.value = editorHtml();
    var draft = { format: htmlMode() ? "html" : "text" };
    DRAFT_FIELDS.forEach(function (name) {
      var field = form.elements.namedItem(name);
      draft[name] = field ? field.value : "";
    });
    return draft;
  }

  function saveDraft() {
    var store = storage();
    if (!store || !draftKey) return;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(function () {
      try { store.setItem(draftKey, JSON.stringify(currentDraft())); } catch (error) { /* full */ }
    }, 400);
  }

  function keptDraft() {
    var store = storage();
    if (!store || !draftKey) return null;
    try { return JSON.parse(store.getItem(draftKey) || "null"); } catch (error) { return null; }
  }

  function sameAsForm(draft) {
    var now = currentDraft();
    return DRAFT_FIELDS.every(function (name) { return (draft[name] || "") === (now[name] || ""); });
  }

  function restore(draft) {
    var radio = form.querySelector('input[name="format"][value="' + (draft.format === "text" ? "text" : "html") + '"]');
    if (radio) radio.checked = true;
    DRAFT_FIELDS.forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field && typeof draft[name] === "string") field.value = draft[name];
    });
    showMode(false);
    schedulePreview();
  }

  form.addEventListener("input", saveDraft);
  form.addEventListener("change", saveDraft);
  editor.addEventListener("input", saveDraft);

  // --- "Sending…" (B13): one click sends once, and says so.
  var sending = false;
  form.addEventListener("submit", function (event) {
    if (htmlMode()) textarea.value = editorHtml();
    if (sending || !fitsLimits()) { event.preventDefault(); return; }
    sending = true;
    clearTimeout(saveTimer);
    var store = storage();
    if (store && draftKey) store.removeItem(draftKey);
    var pressed = event.submitter || sendButton;
    if (pressed) {
      pressed.setAttribute("aria-disabled", "true");
      pressed.classList.add("busy");
      if (pressed.dataset.sending) pressed.textContent = pressed.dataset.sending;
    }
    form.setAttribute("aria-busy", "true");
  });
  // Coming back with the browser's Back button shows the page as it was left.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    sending = false;
    form.removeAttribute("aria-busy");
    if (sendButton) {
      sendButton.removeAttribute("aria-disabled");
      sendButton.classList.remove("busy");
    }
  });

  showMode(false);

  var kept = keptDraft();
  if (form.hasAttribute("data-draft-keep")) {
    saveDraft();
  } else if (kept && restoreBar && !sameAsForm(kept)) {
    restoreBar.hidden = false;
    document.getElementById("draft-restore-yes").addEventListener("click", function () {
      restore(kept);
      restoreBar.hidden = true;
    });
    document.getElementById("draft-restore-no").addEventListener("click", function () {
      var store = storage();
      if (store) store.removeItem(draftKey);
      restoreBar.hidden = true;
    });
  }
})();
