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

  var wasLost = false;
  document.addEventListener("htmx:sseError", function () {
    wasLost = true;
    setLive(false);
  });
  document.addEventListener("htmx:sseOpen", function () {
    setLive(true);
    if (wasLost) {
      // Whatever changed while the connection was down: fetch the rows once now.
      wasLost = false;
      var rows = document.getElementById("rows");
      if (rows && window.htmx) window.htmx.trigger(rows, "catch-up");
    }
  });
})();
