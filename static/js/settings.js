// Settings page: start a Last.fm import and follow it inline (the same SillonProgress component as
// the progress page), and keep the live tracker card up to date. Text only, never HTML.
(function () {
  "use strict";
  var t = window.SillonProgress.t;  // translated words from the page (#i18n)

  var postJSON = window.SillonHttp.postJSON;

  // ---------------------------------------------------------------- connection forms
  // Each form posts itself (its CSRF field included) and shows what the service answered; a saved
  // form reloads the page, whose fields then say where each value comes from. A refused test shows
  // "Save anyway". The typed secrets stay in the form only: never stored, never shown back.
  var SAVED_KEY = "sillon.connect.saved";
  Array.prototype.forEach.call(document.querySelectorAll("form.connect-form"), function (form) {
    var out = document.getElementById(form.id + "-result");
    var anyway = document.getElementById(form.id + "-anyway");
    var kept = sessionStorage.getItem(SAVED_KEY + "." + form.dataset.group);
    if (kept !== null) {
      sessionStorage.removeItem(SAVED_KEY + "." + form.dataset.group);
      out.textContent = kept;
      out.className = "connect-result ok";
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var data = new FormData(form, e.submitter || undefined);
      out.textContent = t("settings.testing");
      out.className = "connect-result";
      window.SillonHttp.send(form.action, { method: "POST", body: data, headers: { Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (body) { return { status: r.status, body: body }; }); })
        .then(function (r) {
          if (r.status === 200) {
            sessionStorage.setItem(SAVED_KEY + "." + form.dataset.group, r.body.message);
            window.location.reload();
            return;
          }
          out.textContent = r.body.message || r.body.error || t("settings.job_failed");
          out.className = "connect-result notice error";
          anyway.hidden = !r.body.can_save_anyway;
        })
        .catch(function () {
          out.textContent = t("settings.unreachable");
          out.className = "connect-result notice error";
        });
    });
  });

  // ---------------------------------------------------------------- job cards
  // A card with class "job-card" holds a start form (data-url), an error line (.job-error) and a box
  // (.inline-progress) where the started job is followed live; a job already running when the page
  // loads comes as the box's data-snapshot.
  function attach(box, links, snapshot) {
    var template = document.getElementById("inline-progress-template");
    box.textContent = "";
    box.appendChild(template.content.cloneNode(true));
    box.dataset.eventsUrl = links.events_url;
    box.dataset.statusUrl = links.status_url;
    box.dataset.cancelUrl = "/api/v1/jobs/" + links.job_id + "/cancel";
    box.dataset.resumeUrl = "/api/v1/jobs/" + links.job_id + "/resume";
    box.querySelector('[data-part="full-page"]').href = window.SillonHttp.safeUrl(links.progress_url) || "#";
    box.hidden = false;
    var start = snapshot ? Promise.resolve(snapshot)
      : window.SillonHttp.send(links.status_url, { headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); });
    start.then(function (snap) { window.SillonProgress.mount(box, snap, { redirect: false }); });
  }

  function linksFor(id) {
    return { job_id: id, events_url: "/api/v1/jobs/" + id + "/events", status_url: "/api/v1/jobs/" + id,
             progress_url: "/progress/" + id };
  }

  Array.prototype.forEach.call(document.querySelectorAll(".job-card"), function (card) {
    var box = card.querySelector(".inline-progress");
    var errorBox = card.querySelector(".job-error");
    var form = card.querySelector("form.job-start");
    if (box && box.dataset.snapshot) {
      var running = JSON.parse(box.dataset.snapshot);
      attach(box, linksFor(running.id), running);
    }
    if (!form) return;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      errorBox.hidden = true;
      var params = new URLSearchParams();
      Array.prototype.forEach.call(form.elements, function (field) {
        if (!field.name) return;
        if (field.type === "checkbox") {
          if (field.checked && field.dataset.param) params.set(field.dataset.param, field.dataset.value);
        } else if (field.value.trim()) {
          params.set(field.name, field.value.trim());
        }
      });
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      postJSON(form.dataset.url + "?" + params.toString()).then(function (r) {
        button.disabled = false;
        if (r.status === 202 || (r.status === 409 && r.body.job_id)) {
          attach(box, r.body);
        } else {
          errorBox.textContent = r.body.error || t("settings.job_failed");
          errorBox.hidden = false;
        }
      }).catch(function () {
        button.disabled = false;
        errorBox.textContent = t("settings.no_answer");
        errorBox.hidden = false;
      });
    });
  });

  var languageForm = document.getElementById("ai-language-form");
  if (languageForm) {
    languageForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var out = document.getElementById("ai-language-result");
      postJSON(languageForm.dataset.url + "?language=" + encodeURIComponent(languageForm.elements.language.value))
        .then(function (r) { out.textContent = r.status === 200 ? t("settings.saved") : r.body.error; });
    });
  }

  // ---------------------------------------------------------------- connection tests
  Array.prototype.forEach.call(document.querySelectorAll("button.service-test"), function (button) {
    var out = document.getElementById(button.getAttribute("aria-describedby"));
    var item = button.closest(".service");
    button.addEventListener("click", function () {
      button.disabled = true;
      out.className = "service-result";
      out.textContent = t("settings.checking");
      postJSON(button.dataset.url).then(function (r) {
        button.disabled = false;
        out.textContent = r.body.message || r.body.error;
        out.className = "service-result " + (r.body.ok ? "ok" : "notice error");
        item.dataset.testOk = r.body.ok ? "true" : "false";
        if (r.body.last_success) {
          var last = item.querySelector('[data-part="last-success"]');
          var time = document.createElement("time");
          time.dateTime = r.body.last_success;
          time.textContent = r.body.last_success.slice(0, 16).replace("T", " ") + " UTC";
          last.textContent = "";
          last.appendChild(time);
        }
      }).catch(function () {
        button.disabled = false;
        out.className = "service-result notice error";
        out.textContent = t("settings.no_answer");
      });
    });
  });

  // ---------------------------------------------------------------- live tracker
  var card = document.getElementById("tracker-card");
  if (!card) return;
  var message = document.getElementById("tracker-message");

  function describe(track) { return track ? track.artist + " — " + track.title : "–"; }

  function renderTracker(s) {
    document.getElementById("tracker-running").textContent = s.running ? t("tracker.running") : t("tracker.stopped");
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
    window.SillonHttp.send(card.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
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
      message.textContent = r.status >= 400 ? r.body.error : t("tracker.interval_saved", { seconds: r.body.interval_seconds });
      if (r.status < 400) renderTracker(r.body);
    });
  });
  refresh();
  setInterval(refresh, 5000);
})();
