// The Event Viewer follows the agent: each "changed" event of the stream fetches the
// tables again (server-rendered), so the page never needs a reload. No library.
(function () {
  "use strict";
  var viewer = document.getElementById("viewer");
  var live = document.getElementById("live");
  if (!viewer || !window.EventSource) { return; }
  var busy = false, again = false;
  function typing() {
    var focused = document.activeElement;
    return focused && focused.closest && focused.closest("form.act") !== null;
  }
  // A note being typed is not swept away by a refresh: it waits until focus leaves.
  viewer.addEventListener("focusout", function () {
    setTimeout(function () { if (again && !typing()) { again = false; refresh(); } }, 0);
  });
  function refresh() {
    if (busy || typing()) { again = true; return; }
    busy = true;
    fetch(viewer.dataset.fragment, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (answer.status === 401) { window.location.reload(); return null; }
        return answer.ok ? answer.text() : null;
      })
      .then(function (html) { if (html !== null) { viewer.innerHTML = html; } })
      .finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
  var stream = new EventSource(viewer.dataset.stream);
  stream.addEventListener("changed", refresh);
  stream.onopen = function () { live.textContent = "live"; live.className = "live"; };
  stream.onerror = function () { live.textContent = "reconnecting"; live.className = "live off"; };
})();
