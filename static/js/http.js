// What every page's scripts share for talking to Sillon: requests that change something carry the
// page's CSRF token (meta[name="csrf-token"]) in X-CSRFToken, an expired sign-in goes back to the
// login page, and links built from data are followed only when they are http(s) or on this site.
window.SillonHttp = (function () {
  "use strict";
  var SAFE_METHODS = { GET: 1, HEAD: 1, OPTIONS: 1 };

  function csrfToken() {
    return document.querySelector('meta[name="csrf-token"]')?.content || "";
  }

  function send(url, options) {
    options = Object.assign({ credentials: "same-origin" }, options || {});
    var method = (options.method || "GET").toUpperCase();
    var headers = new Headers(options.headers || {});
    if (!SAFE_METHODS[method]) headers.set("X-CSRFToken", csrfToken());
    options.headers = headers;
    return fetch(url, options).then(function (r) {
      if (r.status === 401) {  // the sign-in expired (or the password changed): sign in again
        window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      }
      return r;
    });
  }

  // POST without a body; resolves to {status, ok, body} (body: the JSON answer, or {}).
  function postJSON(url) {
    return send(url, { method: "POST", headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().catch(function () { return {}; })
        .then(function (body) { return { status: r.status, ok: r.ok, body: body }; });
    });
  }

  // `url` if it is a path on this site or an http(s) address, else "" (no javascript:, data:, ...).
  function safeUrl(url) {
    if (typeof url !== "string" || !url) return "";
    if (url.charAt(0) === "/" && url.charAt(1) !== "/" && url.charAt(1) !== "\\") return url;
    try {
      var parsed = new URL(url, location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : "";
    } catch (e) {
      return "";
    }
  }

  return { csrfToken: csrfToken, send: send, postJSON: postJSON, safeUrl: safeUrl };
})();
