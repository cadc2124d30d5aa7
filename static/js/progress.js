// Live progress page: renders a job snapshot, follows it over Server-Sent Events, falls back to
// polling the JSON snapshot every second, and moves on to the result when the job succeeds.
// Everything from the server is inserted with textContent, never as HTML. Words shown come from the
// page's translated strings (<script type="application/json" id="i18n">, see base.html).
window.SillonProgress = (function () {
  "use strict";
  var FINAL = { completed: 1, error: 1, cancelled: 1, interrupted: 1 };
  var STRINGS = (function () {
    var node = document.getElementById("i18n");
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  })();
  var LANG = document.documentElement.lang || undefined;

  // The translated text of `key` with %(name)s placeholders filled from `values`.
  function t(key, values, fallback) {
    var text = STRINGS[key] || fallback || key;
    return text.replace(/%\((\w+)\)s/g, function (_m, name) {
      return values && values[name] !== undefined ? values[name] : "";
    }).replace(/%%/g, "%");
  }
  function num(n, digits) {
    return Number(n || 0).toLocaleString(LANG, digits === undefined ? undefined : { maximumFractionDigits: digits });
  }
  function stepName(step) { return t("stepname." + step.name, null, step.name); }
  function statusLabel(status) { return t("status." + status, null, (status || "").replace("_", " ")); }

  // Follow one job inside `root`: any element holding data-part="bar", "bar-fill", "status-text",
  // "stat-*", "counters", "steps", "errors-box", "errors", "errors-note", "cancel-button",
  // "resume-button" or "result-link" is kept up to date; missing parts are simply skipped.
  // opts.redirect (default true) moves to the result when a job seen running completes.
  function mount(root, initial, opts) {
    opts = opts || {};

    var ICONS = { pending: "○", in_progress: "◐", completed: "✓", error: "✗", skipped: "–" };
    var urls = {
      events: root.dataset.eventsUrl, status: root.dataset.statusUrl,
      cancel: root.dataset.cancelUrl, resume: root.dataset.resumeUrl
    };
    var dummy = document.createElement("div");
    var $ = function (part) { return root.querySelector('[data-part="' + part + '"]') || dummy; };
    var lastVersion = -1;
    var sawRunning = false;
    var source = null;
    var pollTimer = null;
    var streamErrors = 0;

    function fmtDuration(seconds) {
      if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
      seconds = Math.max(0, Math.round(seconds));
      var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
      if (h) return t("duration.hours", { h: h, m: m }, "%(h)s h %(m)s min");
      if (m) return t("duration.minutes", { m: m, s: s }, "%(m)s min %(s)s s");
      return t("duration.seconds", { s: s }, "%(s)s s");
    }

    function el(tag, cls, text) {
      var node = document.createElement(tag);
      if (cls) node.className = cls;
      if (text !== undefined && text !== null) node.textContent = text;
      return node;
    }

    function renderStep(step, tag) {
      var li = el(tag || "li", "step step-" + step.status);
      li.dataset.stepId = step.id;
      var head = el("div", "step-head");
      var icon = el("span", "icon", ICONS[step.status] || "○");
      icon.setAttribute("aria-hidden", "true");
      head.appendChild(icon);
      head.appendChild(el("span", "step-name", stepName(step)));
      head.appendChild(el("span", "step-status visually-hidden", statusLabel(step.status)));
      var pct = el("span", "step-pct", Math.round(step.progress) + "%");
      head.appendChild(pct);
      li.appendChild(head);
      var extra = step.message || "";
      if (step.total) extra = (extra ? extra + " · " : "") + num(step.done) + " / " + num(step.total);
      if (extra) li.appendChild(el("div", "step-message", extra));
      if (step.substeps && step.substeps.length) {
        var ul = el("ul", "substeps");
        step.substeps.forEach(function (sub) { ul.appendChild(renderStep(sub, "li")); });
        li.appendChild(ul);
      }
      return li;
    }

    function render(s) {
      if (!s || s.version < lastVersion) return;
      lastVersion = s.version;
      if (s.status === "running" || s.status === "queued") sawRunning = true;
      var pct = Math.max(0, Math.min(100, s.overall_progress || 0));
      $("bar-fill").style.width = pct + "%";
      var bar = $("bar");
      bar.setAttribute("aria-valuenow", String(Math.round(pct)));
      bar.setAttribute("aria-valuetext", s.total
        ? t("progress.valuetext_rows", { pct: Math.round(pct), done: num(s.done), total: num(s.total) },
            "%(pct)s % — %(done)s of %(total)s")
        : t("progress.valuetext", { pct: Math.round(pct) }, "%(pct)s %"));
      root.dataset.status = s.status;
      $("status-text").textContent = s.message || statusLabel(s.status);
      announce(s);
      $("stat-status").textContent = statusLabel(s.status);
      $("stat-done").textContent = num(pct, 1) + " %" +
        (s.total ? " (" + num(s.done) + " / " + num(s.total) + ")" : "");
      $("stat-elapsed").textContent = fmtDuration(s.elapsed_time);
      $("stat-rate").textContent = s.rate ? t("progress.rate", { rate: num(s.rate, 1) }, "%(rate)s /s") : "–";
      $("stat-eta").textContent = s.status === "running" ? fmtDuration(s.eta_seconds) : "–";

      var counters = $("counters");
      counters.textContent = "";
      Object.keys(s.counters || {}).forEach(function (name) {
        var div = el("div", "counter counter-" + name);
        div.appendChild(el("dt", null, t("counter." + name, null, name.replace("_", " "))));
        var dd = el("dd", null, num(s.counters[name]));
        dd.dataset.counter = name;
        div.appendChild(dd);
        counters.appendChild(div);
      });

      var steps = $("steps");
      steps.textContent = "";
      (s.steps || []).forEach(function (step) { steps.appendChild(renderStep(step)); });

      var errs = s.errors_sample || [];
      $("errors-box").hidden = errs.length === 0;
      var list = $("errors");
      list.textContent = "";
      errs.forEach(function (e) {
        var where = [e.file, e.line ? t("progress.line", { line: e.line }, "line %(line)s") : null].filter(Boolean).join(", ");
        list.appendChild(el("li", null, (where ? where + ": " : "") + e.message));
      });
      $("errors-csv").hidden = !(s.kind === "upload_import" && (s.errors_total || 0) > 0);
      $("errors-note").textContent = (s.errors_total || errs.length) > errs.length
        ? t("progress.errors_shown", { shown: num(errs.length), total: num(s.errors_total) },
            "Showing %(shown)s of %(total)s.") : "";

      var final = !!FINAL[s.status];
      $("cancel-button").hidden = final;
      var resumable = !(s.result && s.result.resumable === false);
      $("resume-button").hidden = !resumable ||
        !(s.status === "interrupted" || s.status === "error" || s.status === "cancelled");
      if (final) finish(s);
    }

    // The live region speaks when the step changes and when the job ends, not on every tick.
    var spoken = null;
    function announce(s) {
      var key = FINAL[s.status] ? "final:" + s.status : "step:" + (s.current_step || s.status);
      if (key === spoken) return;
      var firstRender = spoken === null;
      spoken = key;
      if (firstRender && !FINAL[s.status]) return;  // the page itself says where the job is on load
      var step = (s.steps || []).filter(function (x) { return x.id === s.current_step; })[0];
      var text = FINAL[s.status] ? statusLabel(s.status) + (s.message ? ". " + s.message : "")
        : (step ? stepName(step) : statusLabel(s.status));
      $("announce").textContent = text;
    }

    function finish(s) {
      stopFollowing();
      var link = $("result-link");
      var target = window.SillonHttp.safeUrl(s.redirect_url);
      if (target) { link.href = target; link.hidden = false; }
      if (opts.onFinish) opts.onFinish(s);
      if (s.status === "completed" && target && sawRunning && opts.redirect !== false) {
        // Give people a moment to see the final state, then go to the result.
        setTimeout(function () { window.location.assign(target); }, 600);
      }
    }

    function stopFollowing() {
      if (source) { source.close(); source = null; }
      if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    }

    function poll() {
      window.SillonHttp.send(urls.status, { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) { if (s) render(s); })
        .catch(function () { /* try again next second */ });
    }

    function startPolling() {
      if (source) { source.close(); source = null; }
      if (!pollTimer) { root.dataset.transport = "polling"; poll(); pollTimer = setInterval(poll, 1000); }
    }

    function follow() {
      if (!window.EventSource || root.dataset.forcePolling) return startPolling();
      source = new EventSource(urls.events);
      root.dataset.transport = "sse";
      source.addEventListener("progress", function (e) { streamErrors = 0; render(JSON.parse(e.data)); });
      source.addEventListener("done", function (e) {
        var d = JSON.parse(e.data);
        if (source) { source.close(); source = null; }
        // The last progress event carried the final snapshot; fetch it in case it was missed.
        if (d.version > lastVersion) poll(); else if (!FINAL[root.dataset.status]) poll();
      });
      source.onerror = function () {
        streamErrors += 1;
        // EventSource reconnects by itself (sending Last-Event-ID); after repeated failures, poll.
        if (streamErrors >= 3 || (source && source.readyState === EventSource.CLOSED)) startPolling();
      };
    }

    var post = window.SillonHttp.postJSON;

    $("cancel-button").addEventListener("click", function () {
      var btn = this;
      btn.disabled = true;
      $("status-text").textContent = t("progress.cancelling", null, "Cancelling…");
      post(urls.cancel).catch(function () { btn.disabled = false; });
    });

    $("resume-button").addEventListener("click", function () {
      var btn = this;
      btn.disabled = true;
      post(urls.resume).then(function (r) {
        btn.disabled = false;
        if (!r.ok) { $("status-text").textContent = r.body.error || t("progress.resume_failed", null, "Could not resume"); return; }
        btn.hidden = true;
        follow();
      }).catch(function () { btn.disabled = false; });
    });

    render(initial);
    if (!FINAL[initial.status]) follow();
    return { stop: stopFollowing };
  }

  return { mount: mount, FINAL: FINAL, t: t };
})();

(function () {
  var root = document.getElementById("progress");
  var data = document.getElementById("initial-snapshot");
  if (root && data) window.SillonProgress.mount(root, JSON.parse(data.textContent), { redirect: true });
})();
