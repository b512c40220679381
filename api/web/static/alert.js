// The alert page: htmx swaps the status part also when the server refuses (422: a field is
// missing, 409: already resolved), since that answer carries the message; afterwards focus
// goes to the first field in error, else to the status heading, so keyboard and screen
// reader users land where the page changed.
(function () {
  "use strict";

  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    var target = event.detail.target;
    if ((status === 409 || status === 422) && target && target.id === "alert-status") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    // Fired on the elements swapped in: the new status part is the event's target.
    var status = event.target;
    if (!status || status.id !== "alert-status") return;
    var invalid = status.querySelector("[aria-invalid='true']");
    (invalid || document.getElementById("status-title")).focus();
  });
})();
