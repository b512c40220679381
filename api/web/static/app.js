// The staff page's own script: the live connection's state, and catching up after it returns.
// Everything else is htmx attributes in the templates and server-rendered HTML.
(function () {
  "use strict";

  function setLive(online) {
    var live = document.getElementById("live");
    if (!live) return;
    live.classList.toggle("offline", !online);
    live.textContent = online ? live.dataset.online : live.dataset.offline;
  }

  document.addEventListener("htmx:sseError", function () {
    setLive(false);
  });
  document.addEventListener("htmx:sseOpen", function () {
    setLive(true);
    // Whatever changed while the connection was down, or, at the first opening, between
    // rendering the rows and opening the stream: fetch the rows once now.
    var refresh = document.getElementById("rows-refresh");
    if (refresh && window.htmx) window.htmx.trigger(refresh, "catch-up");
  });
})();
