// Desktop notifications (B5): opens, clicks and replies reach the user outside the tab.
//
// Off by default and asked for politely: the browser's permission prompt appears
// only when the user presses "Turn on desktop notifications" on the notifications
// page, never on page load. The choice is kept per user in this browser's
// localStorage, because the permission it depends on is the browser's too: on at
// the office does not mean pop-ups on a shared laptop at home.
//
// app.js fires `mailbeacon:activity` for each live update of the bell; when the
// page is not in front, each new notification (the processor already folds a burst
// of clicks into one) becomes a desktop notification, and several arriving at once
// become one. Clicking it marks what it stands for read and opens the message.
// No inline script (CSP): this file only.
(function () {
  "use strict";
  var body = document.body;
  if (!body.dataset.signedIn) return;
  var root = body.dataset.root || "";
  var key = "mailbeacon:desktop-notifications:" + (body.dataset.user || "");
  var supported = "Notification" in window;

  function enabled() {
    try {
      return window.localStorage.getItem(key) === "on";
    } catch (error) {
      return false;
    }
  }

  function remember(on) {
    try {
      if (on) window.localStorage.setItem(key, "on");
      else window.localStorage.removeItem(key);
    } catch (error) { /* private mode: nothing to remember */ }
  }

  // --- The switch on the notifications page.
  var card = document.getElementById("desktop-notify");

  function show(state) {
    if (!card) return;
    card.hidden = false;
    card.dataset.current = state;
    Array.prototype.forEach.call(card.querySelectorAll("[data-state]"), function (el) {
      el.hidden = el.dataset.state !== state;
    });
  }

  function current() {
    if (!supported) return "unsupported";
    if (Notification.permission === "denied") return "denied";
    return enabled() && Notification.permission === "granted" ? "on" : "off";
  }

  if (card) {
    show(current());
    var on = document.getElementById("desktop-notify-on");
    var off = document.getElementById("desktop-notify-off");
    if (on) on.addEventListener("click", function () {
      var asked = Notification.requestPermission();
      Promise.resolve(asked).then(function (answer) {
        remember(answer === "granted");
        show(current());
      });
    });
    if (off) off.addEventListener("click", function () {
      remember(false);
      show(current());
    });
  }

  // --- Showing them.
  function away() {
    return document.hidden || !document.hasFocus();
  }

  function markRead(ids) {
    var csrf = body.dataset.csrf || "";
    return Promise.all(ids.map(function (id) {
      return fetch(root + "/notifications/" + encodeURIComponent(id) + "/read", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf },
        redirect: "manual",
        keepalive: true
      }).catch(function () { /* the feed still shows it unread: no harm */ });
    }));
  }

  function open(items) {
    var urls = items.map(function (item) { return item.url; });
    var same = urls.every(function (url) { return url === urls[0]; });
    var target = root + (same && urls[0] ? urls[0] : "/notifications");
    var ids = items.map(function (item) { return item.id; }).filter(Boolean);
    markRead(ids).then(function () {
      window.focus();
      window.location.assign(target);
    });
  }

  document.addEventListener("mailbeacon:activity", function (event) {
    var items = (event.detail && event.detail.new) || [];
    if (!items.length || !supported || !enabled() || Notification.permission !== "granted") return;
    if (!away()) return; // the toast in the page says it already
    var title = "MailBeacon";
    var text = items.map(function (item) { return item.text; }).join("\n");
    // The tag makes several open tabs show one notification, not one each.
    var tag = "mailbeacon-" + items.map(function (item) { return item.id; }).join("-");
    var shown = new Notification(title, { body: text, tag: tag, icon: root + "/static/favicon.svg" });
    shown.onclick = function () {
      shown.close();
      open(items);
    };
  });
})();
