// Settings page: start a Last.fm import and follow it inline (the same SillonProgress component as
// the progress page), and keep the live tracker card up to date. Text only, never HTML.
(function () {
  "use strict";

  function postJSON(url) {
    return fetch(url, { method: "POST", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (body) { return { status: r.status, body: body }; }); });
  }

  // ---------------------------------------------------------------- Last.fm import
  var box = document.getElementById("lastfm-progress");
  var errorBox = document.getElementById("lastfm-error");

  function showImport(links, snapshot) {
    var template = document.getElementById("inline-progress-template");
    box.textContent = "";
    box.appendChild(template.content.cloneNode(true));
    box.dataset.eventsUrl = links.events_url;
    box.dataset.statusUrl = links.status_url;
    box.dataset.cancelUrl = "/api/v1/jobs/" + links.job_id + "/cancel";
    box.dataset.resumeUrl = "/api/v1/jobs/" + links.job_id + "/resume";
    box.querySelector('[data-part="full-page"]').href = links.progress_url;
    box.hidden = false;
    var start = snapshot ? Promise.resolve(snapshot)
      : fetch(links.status_url, { headers: { Accept: "application/json" } }).then(function (r) { return r.json(); });
    start.then(function (snap) { window.SillonProgress.mount(box, snap, { redirect: false }); });
  }

  if (box && box.dataset.snapshot) {
    var running = JSON.parse(box.dataset.snapshot);
    showImport({ job_id: running.id, events_url: "/api/v1/jobs/" + running.id + "/events",
                 status_url: "/api/v1/jobs/" + running.id, progress_url: "/progress/" + running.id }, running);
  }

  var form = document.getElementById("lastfm-import-form");
  if (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      errorBox.hidden = true;
      var params = new URLSearchParams();
      var limit = form.elements.limit.value.trim();
      if (limit) params.set("limit", limit);
      if (form.elements.full.checked) params.set("skip_existing", "false");
      var button = document.getElementById("lastfm-start");
      button.disabled = true;
      postJSON(form.dataset.url + "?" + params.toString()).then(function (r) {
        button.disabled = false;
        if (r.status === 202 || (r.status === 409 && r.body.job_id)) {
          showImport(r.body);
        } else {
          errorBox.textContent = r.body.error || "The import could not start.";
          errorBox.hidden = false;
        }
      }).catch(function () {
        button.disabled = false;
        errorBox.textContent = "Sillon did not answer; try again.";
        errorBox.hidden = false;
      });
    });
  }

  var check = document.getElementById("lastfm-check");
  if (check) {
    check.addEventListener("click", function () {
      var out = document.getElementById("lastfm-check-result");
      out.textContent = "Checking…";
      postJSON("/api/v1/services/lastfm/check").then(function (r) {
        out.textContent = r.body.message || r.body.error;
        out.className = r.status === 200 ? "ok" : "notice error";
      });
    });
  }

  // ---------------------------------------------------------------- live tracker
  var card = document.getElementById("tracker-card");
  if (!card) return;
  var message = document.getElementById("tracker-message");

  function describe(track) { return track ? track.artist + " — " + track.title : "–"; }

  function renderTracker(s) {
    document.getElementById("tracker-running").textContent = s.running ? "running" : "stopped";
    document.getElementById("tracker-now-playing").textContent = describe(s.now_playing);
    document.getElementById("tracker-last-track").textContent = describe(s.last_track);
    document.getElementById("tracker-last-poll").textContent = s.last_poll_at || "–";
    document.getElementById("tracker-last-error").textContent = s.last_error || "–";
    document.getElementById("tracker-start").hidden = !!s.running;
    document.getElementById("tracker-stop").hidden = !s.running;
    var interval = document.getElementById("tracker-interval");
    if (document.activeElement !== interval) interval.value = s.interval_seconds;
  }

  function refresh() {
    fetch(card.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.json(); }).then(renderTracker).catch(function () {});
  }

  function act(url) {
    postJSON(url).then(function (r) {
      if (r.status >= 400) { message.textContent = r.body.error; return; }
      message.textContent = "";
      renderTracker(r.body);
    });
  }

  document.getElementById("tracker-start").addEventListener("click", function () { act(card.dataset.startUrl); });
  document.getElementById("tracker-stop").addEventListener("click", function () { act(card.dataset.stopUrl); });
  document.getElementById("tracker-interval-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var seconds = document.getElementById("tracker-interval").value;
    postJSON(card.dataset.intervalUrl + "?seconds=" + encodeURIComponent(seconds)).then(function (r) {
      message.textContent = r.status >= 400 ? r.body.error : "Interval saved: every " + r.body.interval_seconds + " s.";
      if (r.status < 400) renderTracker(r.body);
    });
  });
  refresh();
  setInterval(refresh, 5000);
})();
