// The alert page: htmx swaps the status part also when the server refuses (422: a field is
// missing, 409: already resolved), since that answer carries the message; afterwards focus
// goes to the first field in error, else to the heading of the part whose form was sent (the
// status part for acknowledge and resolve), so keyboard and screen reader users land where
// the page changed.
(function () {
  "use strict";

  // The part a form belongs to, by its heading's id (the form's data-focus).
  var focusAfter = null;

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    focusAfter = form && form.dataset ? form.dataset.focus || null : null;
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    var target = event.detail.target;
    if ((status === 409 || status === 422) && target && target.id === "alert-status") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    // Fired on each element swapped in; the parts out of band are in place by the time the
    // status part (the request's target) settles.
    var status = event.target;
    if (!status || status.id !== "alert-status") return;
    var heading = document.getElementById(focusAfter || "status-title");
    focusAfter = null;
    var part = (heading && heading.closest("section")) || status;
    var invalid = part.querySelector("[aria-invalid='true']");
    (invalid || heading || document.getElementById("status-title")).focus();
  });
})();
