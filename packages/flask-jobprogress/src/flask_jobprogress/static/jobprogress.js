// flask-jobprogress browser client: renders a job's snapshot, follows it over Server-Sent Events,
// falls back to polling the JSON snapshot, offers cancel, and moves on to the result when the job
// completes. No dependencies. Everything from the server is inserted with textContent, never as HTML.
//
//   JobProgress.mount(root, initialSnapshot, options)  -> { stop, render, follow, part }
//
// `root` carries data-events-url, data-status-url and data-cancel-url (the extension's endpoints).
// Any element inside it with data-part="bar", "bar-fill", "status-text", "stat-status", "stat-done",
// "stat-elapsed", "stat-rate", "stat-eta", "counters", "steps", "errors-box", "errors",
// "errors-note", "cancel-button", "result-link" or "announce" (a live region) is kept up to date;
// missing parts are skipped. Elements with data-jobprogress are mounted on load, with the snapshot
// from a <script type="application/json"> inside them, or fetched from the status URL.
//
// Options: strings (translations, keys below), redirect (true), redirectDelay (600 ms), pollMs (1000),
// forcePolling, fetch(url, init) -> Promise<Response>, post(url) -> Promise (cancel),
// safeUrl(url) -> url or null, onRender(snapshot, part), onFinish(snapshot).
// String keys: "status.<status>", "stepname.<step name>", "counter.<name>", "duration.hours",
// "duration.minutes", "duration.seconds", "progress.rate", "progress.line", "progress.errors_shown",
// "progress.valuetext", "progress.valuetext_rows", "progress.cancelling"; %(name)s placeholders.
window.JobProgress = (function () {
  "use strict";
  var FINAL = { completed: 1, error: 1, cancelled: 1, interrupted: 1 };
  var ICONS = { pending: "○", in_progress: "◐", completed: "✓", error: "✗", skipped: "–" };

  function translator(strings) {
    strings = strings || {};
    return function t(key, values, fallback) {
      var text = strings[key] || fallback || key;
      return text.replace(/%\((\w+)\)s/g, function (_m, name) {
        return values && values[name] !== undefined ? values[name] : "";
      }).replace(/%%/g, "%");
    };
  }

  // Only same-origin http(s) URLs are followed: a snapshot cannot send the page elsewhere.
  function sameOrigin(url) {
    if (!url) return null;
    try {
      var u = new URL(url, window.location.href);
      if ((u.protocol === "http:" || u.protocol === "https:") && u.origin === window.location.origin) return u.href;
    } catch (e) { /* not a URL */ }
    return null;
  }

  function defaultFetch(url, init) {
    return window.fetch(url, Object.assign({ credentials: "same-origin" }, init || {}));
  }

  function mount(root, initial, opts) {
    opts = opts || {};
    var t = opts.t || translator(opts.strings);
    var lang = document.documentElement.lang || undefined;
    var doFetch = opts.fetch || defaultFetch;
    var post = opts.post || function (url) { return doFetch(url, { method: "POST" }); };
    var safeUrl = opts.safeUrl || sameOrigin;
    var urls = { events: root.dataset.eventsUrl, status: root.dataset.statusUrl, cancel: root.dataset.cancelUrl };
    var dummy = document.createElement("div");
    var part = function (name) { return root.querySelector('[data-part="' + name + '"]') || dummy; };
    var lastVersion = -1, sawRunning = false, source = null, pollTimer = null, streamErrors = 0, spoken = null;

    function num(n, digits) {
      return Number(n || 0).toLocaleString(lang, digits === undefined ? undefined : { maximumFractionDigits: digits });
    }
    function stepName(step) { return t("stepname." + step.name, null, step.name); }
    function statusLabel(status) { return t("status." + status, null, (status || "").replace("_", " ")); }

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

    function renderStep(step) {
      var li = el("li", "step step-" + step.status);
      li.dataset.stepId = step.id;
      var head = el("div", "step-head");
      var icon = el("span", "icon", ICONS[step.status] || "○");
      icon.setAttribute("aria-hidden", "true");
      head.appendChild(icon);
      head.appendChild(el("span", "step-name", stepName(step)));
      head.appendChild(el("span", "step-status visually-hidden", statusLabel(step.status)));
      head.appendChild(el("span", "step-pct", Math.round(step.progress) + "%"));
      li.appendChild(head);
      var extra = step.message || "";
      if (step.total) extra = (extra ? extra + " · " : "") + num(step.done) + " / " + num(step.total);
      if (extra) li.appendChild(el("div", "step-message", extra));
      if (step.substeps && step.substeps.length) {
        var ul = el("ul", "substeps");
        step.substeps.forEach(function (sub) { ul.appendChild(renderStep(sub)); });
        li.appendChild(ul);
      }
      return li;
    }

    function render(s) {
      if (!s || s.version < lastVersion) return;
      lastVersion = s.version;
      if (s.status === "running" || s.status === "queued") sawRunning = true;
      var pct = Math.max(0, Math.min(100, s.overall_progress || 0));
      part("bar-fill").style.width = pct + "%";
      var bar = part("bar");
      bar.setAttribute("aria-valuenow", String(Math.round(pct)));
      bar.setAttribute("aria-valuetext", s.total
        ? t("progress.valuetext_rows", { pct: Math.round(pct), done: num(s.done), total: num(s.total) },
            "%(pct)s % — %(done)s of %(total)s")
        : t("progress.valuetext", { pct: Math.round(pct) }, "%(pct)s %"));
      root.dataset.status = s.status;
      part("status-text").textContent = s.message || statusLabel(s.status);
      announce(s);
      part("stat-status").textContent = statusLabel(s.status);
      part("stat-done").textContent = num(pct, 1) + " %" + (s.total ? " (" + num(s.done) + " / " + num(s.total) + ")" : "");
      part("stat-elapsed").textContent = fmtDuration(s.elapsed_time);
      part("stat-rate").textContent = s.rate ? t("progress.rate", { rate: num(s.rate, 1) }, "%(rate)s /s") : "–";
      part("stat-eta").textContent = s.status === "running" ? fmtDuration(s.eta_seconds) : "–";

      var counters = part("counters");
      counters.textContent = "";
      Object.keys(s.counters || {}).forEach(function (name) {
        var div = el("div", "counter counter-" + name);
        div.appendChild(el("dt", null, t("counter." + name, null, name.replace("_", " "))));
        var dd = el("dd", null, num(s.counters[name]));
        dd.dataset.counter = name;
        div.appendChild(dd);
        counters.appendChild(div);
      });

      var steps = part("steps");
      steps.textContent = "";
      (s.steps || []).forEach(function (step) { steps.appendChild(renderStep(step)); });

      var errs = s.errors_sample || [];
      part("errors-box").hidden = errs.length === 0;
      var list = part("errors");
      list.textContent = "";
      errs.forEach(function (e) {
        var where = [e.file, e.line ? t("progress.line", { line: e.line }, "line %(line)s") : null].filter(Boolean).join(", ");
        list.appendChild(el("li", null, (where ? where + ": " : "") + e.message));
      });
      part("errors-note").textContent = (s.errors_total || errs.length) > errs.length
        ? t("progress.errors_shown", { shown: num(errs.length), total: num(s.errors_total) }, "Showing %(shown)s of %(total)s.")
        : "";

      var final = !!FINAL[s.status];
      part("cancel-button").hidden = final;
      if (opts.onRender) opts.onRender(s, part);
      if (final) finish(s);
    }

    // The live region speaks when the step changes and when the job ends, not on every tick.
    function announce(s) {
      var key = FINAL[s.status] ? "final:" + s.status : "step:" + (s.current_step || s.status);
      if (key === spoken) return;
      var firstRender = spoken === null;
      spoken = key;
      if (firstRender && !FINAL[s.status]) return;  // the page itself says where the job is on load
      var step = (s.steps || []).filter(function (x) { return x.id === s.current_step; })[0];
      part("announce").textContent = FINAL[s.status] ? statusLabel(s.status) + (s.message ? ". " + s.message : "")
        : (step ? stepName(step) : statusLabel(s.status));
    }

    function finish(s) {
      stopFollowing();
      var link = part("result-link");
      var target = safeUrl(s.redirect_url);
      if (target) { link.href = target; link.hidden = false; }
      if (opts.onFinish) opts.onFinish(s);
      if (s.status === "completed" && target && sawRunning && opts.redirect !== false) {
        // A moment to see the final state, then the result.
        setTimeout(function () { window.location.assign(target); }, opts.redirectDelay === undefined ? 600 : opts.redirectDelay);
      }
    }

    function stopFollowing() {
      if (source) { source.close(); source = null; }
      if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    }

    function poll() {
      return doFetch(urls.status, { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) { if (s) render(s); })
        .catch(function () { /* try again at the next tick */ });
    }

    function startPolling() {
      if (source) { source.close(); source = null; }
      if (!pollTimer) { root.dataset.transport = "polling"; poll(); pollTimer = setInterval(poll, opts.pollMs || 1000); }
    }

    function follow() {
      if (!window.EventSource || opts.forcePolling || root.dataset.forcePolling) return startPolling();
      source = new EventSource(urls.events);
      root.dataset.transport = "sse";
      source.addEventListener("progress", function (e) { streamErrors = 0; render(JSON.parse(e.data)); });
      source.addEventListener("done", function (e) {
        var d = JSON.parse(e.data);
        if (source) { source.close(); source = null; }
        // The last progress event carried the final snapshot; fetch it in case it was missed.
        if (d.version > lastVersion || !FINAL[root.dataset.status]) poll();
      });
      source.onerror = function () {
        streamErrors += 1;
        // EventSource reconnects by itself (sending Last-Event-ID); after repeated failures, poll.
        if (streamErrors >= 3 || (source && source.readyState === EventSource.CLOSED)) startPolling();
      };
    }

    part("cancel-button").addEventListener("click", function () {
      var btn = this;
      btn.disabled = true;
      part("status-text").textContent = t("progress.cancelling", null, "Cancelling…");
      Promise.resolve(post(urls.cancel)).catch(function () { btn.disabled = false; });
    });

    if (initial) {
      render(initial);
      if (!FINAL[initial.status]) follow();
    } else {
      poll().then(function () { if (!FINAL[root.dataset.status]) follow(); });
    }
    return { stop: stopFollowing, render: render, follow: follow, part: part };
  }

  function mountAll() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-jobprogress]"), function (root) {
      var data = root.querySelector('script[type="application/json"]');
      var strings = document.getElementById("jobprogress-strings");
      var options = { strings: strings ? JSON.parse(strings.textContent) : {} };
      if (root.dataset.redirect === "false") options.redirect = false;
      mount(root, data ? JSON.parse(data.textContent) : null, options);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();

  return { mount: mount, FINAL: FINAL, translator: translator, sameOrigin: sameOrigin };
})();
