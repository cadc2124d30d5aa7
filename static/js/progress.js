// Sillon's progress page and inline progress boxes: flask-jobprogress's client (jobprogress.js, served
// by the extension at /static/jobprogress/jobprogress.js, loaded before this file) with Sillon's own
// parts: the page's translated strings (<script type="application/json" id="i18n">, see base.html),
// its HTTP helpers (CSRF header, same-origin URLs), the error CSV link and the Resume button.
window.SillonProgress = (function () {
  "use strict";
  var STRINGS = (function () {
    var node = document.getElementById("i18n");
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  })();
  var t = window.JobProgress.translator(STRINGS);
  var http = window.SillonHttp;
  var lang = document.documentElement.lang || undefined;

  // Follow one job inside `root` (see jobprogress.js for the data-part names it keeps up to date;
  // here also "errors-csv", "resume-button" and "stalled"). opts.redirect (default true) moves to the result
  // when a job seen running completes.
  function mount(root, initial, opts) {
    opts = opts || {};
    var handle = window.JobProgress.mount(root, initial, {
      t: t, redirect: opts.redirect, onFinish: opts.onFinish,
      fetch: http.send, post: http.postJSON, safeUrl: http.safeUrl,
      onRender: function (s, part) {
        part("errors-csv").hidden = !(s.kind === "upload_import" && (s.errors_total || 0) > 0);
        // The server adds stalled_seconds to a running job whose worker missed two beats; a later
        // snapshot without it (beats back, or the job continued elsewhere) takes the note away.
        var late = s.status === "running" && s.stalled_seconds > 0;
        var stalled = part("stalled");
        stalled.hidden = !late;
        stalled.textContent = late ? t("progress.stalled", { seconds: Math.round(s.stalled_seconds).toLocaleString(lang) },
          "Stalled: no news from the worker for %(seconds)s s") : "";
        root.dataset.stalled = late ? "true" : "false";
        var resumable = !(s.result && s.result.resumable === false);
        part("resume-button").hidden = !resumable ||
          !(s.status === "interrupted" || s.status === "error" || s.status === "cancelled");
      }
    });

    handle.part("resume-button").addEventListener("click", function () {
      var btn = this;
      btn.disabled = true;
      http.postJSON(root.dataset.resumeUrl).then(function (r) {
        btn.disabled = false;
        if (!r.ok) {
          handle.part("status-text").textContent = r.body.error || t("progress.resume_failed", null, "Could not resume");
          return;
        }
        btn.hidden = true;
        handle.follow();
      }).catch(function () { btn.disabled = false; });
    });
    return handle;
  }

  return { mount: mount, FINAL: window.JobProgress.FINAL, t: t };
})();

(function () {
  var root = document.getElementById("progress");
  var data = document.getElementById("initial-snapshot");
  if (root && data) window.SillonProgress.mount(root, JSON.parse(data.textContent), { redirect: true });
})();
