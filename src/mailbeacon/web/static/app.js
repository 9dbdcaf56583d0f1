// Sign-in tells the server the browser's time zone, so that times show in the
// user's own zone until they choose one in Settings.
(function () {
  "use strict";
  var field = document.getElementById("browser-timezone");
  if (!field || !window.Intl) return;
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    field.value = "";
  }
})();

// Live bell (S9, B5): the unread count and a toast update without a reload.
// Server-sent events from /notifications/stream; EventSource reconnects by itself.
(function () {
  "use strict";
  if (!document.body.dataset.signedIn || !window.EventSource) return;
  var count = document.getElementById("bell-count");
  var bell = document.getElementById("bell");
  var toasts = document.getElementById("toasts");
  // The app may live under a path prefix (PUBLIC_URL with a path): the page says which.
  var root = document.body.dataset.root || "";
  var source = new EventSource(root + "/notifications/stream");
  var seen = false;

  function showCount(n) {
    if (!count) return;
    var before = parseInt(count.dataset.count || "0", 10);
    count.dataset.count = String(n);
    count.textContent = n > 99 ? "99+" : String(n);
    count.hidden = n === 0;
    // The bell's accessible name carries the count ("Notifications, 3 unread"); the
    // badge itself is hidden from screen readers, so it is not read twice.
    if (bell) {
      var some = bell.dataset.labelSome, none = bell.dataset.labelNone;
      if (some && none) bell.setAttribute("aria-label", n ? some.replace("{n}", String(n)) : none);
    }
    if (n > before && bell) {
      bell.classList.remove("ring");
      void bell.offsetWidth;
      bell.classList.add("ring");
    }
  }

  function toast(text, url) {
    if (!toasts || !text) return;
    var box = document.createElement("div");
    box.className = "toast";
    box.setAttribute("role", "status");
    if (url) {
      var link = document.createElement("a");
      link.href = url;
      link.textContent = text;
      box.appendChild(link);
    } else {
      box.textContent = text;
    }
    toasts.appendChild(box);
    setTimeout(function () { box.remove(); }, 8000);
  }

  source.addEventListener("unread", function (event) {
    var data = JSON.parse(event.data);
    showCount(data.unread);
    (data.new || []).forEach(function (item) { toast(item.text, item.url && root + item.url); });
    // Only news refreshes the page's live parts: the stream's first event (the count
    // as it stands when the page connects) describes what the page already shows.
    if ((data.new || []).length || seen) {
      document.dispatchEvent(new CustomEvent("mailbeacon:activity", { detail: data }));
    }
    seen = true;
  });
})();
