// Live regions: each element with data-fragment is fetched again (server-rendered HTML)
// after every "changed" event of the agent's stream, so no page needs a reload. A region
// with data-poll (milliseconds) is also fetched on that period: always with
// data-always="1", else only while its content says it runs (data-running="1": a job's
// progress bar). No library.
(function () {
  "use strict";
  var FETCH_TIMEOUT = 10000;
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-fragment]"));
  var live = document.getElementById("live");
  function say(text, on) {
    if (live) { live.textContent = text; live.className = on ? "live" : "live off"; }
  }
  if (regions.length === 0) { return; }
  say("connecting", false);
  function typing(region) {
    var focused = document.activeElement;
    return focused && region.contains(focused) && focused.closest &&
      focused.closest("form") !== null;
  }
  // A fetch that hangs (an agent stopped mid-answer) must not freeze its region: each
  // is abandoned after FETCH_TIMEOUT.
  function get(url) {
    var control = window.AbortController ? new AbortController() : null;
    var timer = control ? setTimeout(function () { control.abort(); }, FETCH_TIMEOUT) : null;
    var options = { credentials: "same-origin", cache: "no-store" };
    if (control) { options.signal = control.signal; }
    return fetch(url, options).finally(function () { if (timer) { clearTimeout(timer); } });
  }
  function watch(region) {
    var busy = false, again = false, last = null;
    // After a failed fetch the polls back off (1, 2, 4 ... 32 periods); a region whose
    // page is gone (404) stops polling.
    var failures = 0, skip = 0, gone = false;
    // A note being typed is not swept away by a refresh: it waits until focus leaves.
    region.addEventListener("focusout", function () {
      setTimeout(function () { if (again && !typing(region)) { again = false; refresh(); } }, 0);
    });
    function put(html) {
      if (html === last) { return; }  // nothing changed: keep focus and the reader's place
      last = html;
      var focused = document.activeElement;
      var focusId = focused && region.contains(focused) ? focused.id : "";
      region.innerHTML = html;
      if (focusId) {
        var target = document.getElementById(focusId);
        if (target) { target.focus(); }
      }
      region.dispatchEvent(new CustomEvent("refreshed", { bubbles: true }));
    }
    function refresh() {
      if (busy || typing(region)) { again = true; return; }
      busy = true;
      get(region.dataset.fragment)
        .then(function (answer) {
          if (answer.status === 401) { window.location.reload(); return null; }
          if (answer.status === 404) { gone = true; }
          if (!answer.ok) { throw new Error(String(answer.status)); }
          return answer.text();
        })
        .then(function (html) {
          failures = 0;
          if (html !== null) { put(html); }
        })
        .catch(function () {
          // The agent is away or refused: the stream says so; polls wait longer.
          failures = Math.min(failures + 1, 5);
          skip = Math.pow(2, failures) - 1;
        })
        .finally(function () {
          busy = false;
          if (again) { again = false; refresh(); }
        });
    }
    if (region.dataset.poll) {
      var period = parseInt(region.dataset.poll, 10);
      var always = region.dataset.always === "1";
      setInterval(function () {
        if (gone || document.hidden) { return; }  // a hidden tab waits until it is shown
        if (skip > 0) { skip -= 1; return; }
        if (always || region.querySelector("[data-running='1']")) { refresh(); }
      }, period);
    }
    return refresh;
  }
  var refreshers = regions.map(watch);
  function all() { refreshers.forEach(function (refresh) { refresh(); }); }
  if (!window.EventSource) { say("not live (no EventSource)", false); return; }
  // EventSource retries by itself after a dropped connection, but gives up for good on
  // an answer that is not a stream (401 once the agent restarted and forgot the session,
  // 503 when too many pages are open): then the page checks its session (a 401 reloads
  // it to the login page) and opens a new stream after a growing pause.
  var pause = 2000, stream = null, retry = null;
  function connect() {
    retry = null;
    if (document.hidden) { return; }
    stream = new EventSource("/ui/stream");
    var mine = stream;
    mine.addEventListener("changed", all);
    mine.onopen = function () {
      pause = 2000;
      say("live", true);
      all();  // what changed while it was away
    };
    mine.onerror = function () {
      say("reconnecting", false);
      if (mine.readyState !== EventSource.CLOSED) { return; }
      stream = null;
      get("/ui/fragments/banners")
        .then(function (answer) { if (answer.status === 401) { window.location.reload(); } })
        .catch(function () { /* away: try again later */ });
      retry = setTimeout(connect, pause);
      pause = Math.min(pause * 2, 30000);
    };
  }
  // A browser keeps about six connections to one host: a stream held by every open tab
  // would leave none for the pages themselves. A hidden tab closes its stream and opens
  // it again when shown (catching up at once).
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (stream) { stream.close(); stream = null; }
      if (retry) { clearTimeout(retry); retry = null; }
      say("paused (tab hidden)", false);
    } else if (!stream && !retry) {
      connect();
    }
  });
  connect();
})();
