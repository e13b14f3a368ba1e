// AtomicSeats pages: progressive enhancement only; every page works without this file.
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
