// AtomicSeats pages: progressive enhancement only; every page works without this file.
// Times: the server writes them in UTC; here they are shown in the viewer's own time zone (the
// UTC time stays as the element's title).
(function () {
  "use strict";
  if (!window.Intl || !Intl.DateTimeFormat) { return; }
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone || zone === "UTC" || zone === "Etc/UTC") { return; }
  var format = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
    weekday: "short", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var at = Date.parse(el.getAttribute("datetime"));
    if (isNaN(at)) { return; }
    el.setAttribute("title", el.textContent);
    el.textContent = format.format(at);
  });
})();
// Countdowns: an element with data-countdown and a datetime attribute shows the time left.
(function () {
  "use strict";
  function tick(el, at) {
    var left = Math.max(0, Math.round((at - Date.now()) / 1000));
    var d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600),
        m = Math.floor(left % 3600 / 60), s = left % 60;
    el.setAttribute("data-left", (d ? d + "d " : "") + h + "h " + m + "m " + s + "s");
    return left > 0;
  }
  document.querySelectorAll("[data-countdown]").forEach(function (el) {
    var at = Date.parse(el.getAttribute("datetime"));
    if (isNaN(at)) { return; }
    var live = document.createElement("span");
    live.setAttribute("aria-live", "polite");
    live.className = "countdown";
    el.after(live);
    var timer = setInterval(function () {
      if (!tick(el, at)) { clearInterval(timer); }
      live.textContent = " (" + el.getAttribute("data-left") + ")";
    }, 1000);
  });
})();
// The waiting room: follow my place over the API's event stream; when it is my turn (or the
// sale ends), reload to show the booking form. Without this, the page's link checks again.
(function () {
  "use strict";
  var room = document.querySelector("[data-room-stream]");
  if (!room || !window.EventSource) { return; }
  var source = new EventSource(room.getAttribute("data-room-stream"));
  source.addEventListener("status", function (e) {
    var s;
    try { s = JSON.parse(e.data); } catch (err) { return; }
    if (s.status !== "waiting") { source.close(); window.location.reload(); return; }
    var set = function (name, value) {
      var el = room.querySelector("[data-field=" + name + "]");
      if (el && value !== null && value !== undefined) { el.textContent = String(value); }
    };
    set("position", s.position);
    set("ahead", s.ahead);
    if (s.estimatedWaitSecs) { set("wait", Math.ceil(s.estimatedWaitSecs / 60)); }
  });
})();
// Live availability on an event page: the API's own event every 5 s while the page is visible.
(function () {
  "use strict";
  var box = document.querySelector("[data-live-event]");
  if (!box || !window.fetch) { return; }
  var id = box.getAttribute("data-live-event");
  function refresh() {
    if (document.hidden) { return; }
    fetch("/api/events/" + encodeURIComponent(id), { headers: { accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body || !body.data) { return; }
        var left = body.data.availableSeats;
        var meter = box.querySelector("meter");
        if (meter) { meter.value = left; }
        var text = box.querySelector("[data-field=available]");
        if (text) { text.textContent = String(left); }
      })
      .catch(function () { /* the next tick tries again */ });
  }
  setInterval(refresh, 5000);
})();
