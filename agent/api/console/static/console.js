// Live regions: each element with data-fragment is fetched again (server-rendered HTML)
// after every "changed" event of the agent's stream, so no page needs a reload. A region
// with data-poll (milliseconds) is also fetched on that period while it says it runs
// (data-running="1" on its content): a job's progress bar. No library.
(function () {
  "use strict";
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-fragment]"));
  var live = document.getElementById("live");
  if (regions.length === 0) { return; }
  function typing(region) {
    var focused = document.activeElement;
    return focused && region.contains(focused) && focused.closest &&
      focused.closest("form") !== null;
  }
  function watch(region) {
    var busy = false, again = false;
    // A note being typed is not swept away by a refresh: it waits until focus leaves.
    region.addEventListener("focusout", function () {
      setTimeout(function () { if (again && !typing(region)) { again = false; refresh(); } }, 0);
    });
    function refresh() {
      if (busy || typing(region)) { again = true; return; }
      busy = true;
      fetch(region.dataset.fragment, { credentials: "same-origin", cache: "no-store" })
        .then(function (answer) {
          if (answer.status === 401) { window.location.reload(); return null; }
          return answer.ok ? answer.text() : null;
        })
        .then(function (html) {
          if (html !== null) {
            region.innerHTML = html;
            region.dispatchEvent(new CustomEvent("refreshed", { bubbles: true }));
          }
        })
        .finally(function () {
          busy = false;
          if (again) { again = false; refresh(); }
        });
    }
    if (region.dataset.poll) {
      var period = parseInt(region.dataset.poll, 10);
      setInterval(function () {
        if (region.querySelector("[data-running='1']")) { refresh(); }
      }, period);
    }
    return refresh;
  }
  var refreshers = regions.map(watch);
  if (!window.EventSource) { return; }
  var stream = new EventSource("/ui/stream");
  stream.addEventListener("changed", function () {
    refreshers.forEach(function (refresh) { refresh(); });
  });
  stream.onopen = function () {
    if (live) { live.textContent = "live"; live.className = "live"; }
  };
  stream.onerror = function () {
    if (live) { live.textContent = "reconnecting"; live.className = "live off"; }
  };
})();
