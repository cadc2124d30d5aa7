// The journal's first page follows new listens: an event stream says the listen feed moved, and the
// page fetches its listing again (rendered and escaped by the server's own template) and swaps it in.
// Only the first page without filters has #journal-live: a person reading older listens is not moved.
(function () {
  "use strict";
  const root = document.getElementById("journal-live");
  if (!root || !window.EventSource || !window.fetch || !window.DOMParser) return;
  let shown = Number(root.dataset.version || 0);
  let fetching = false;
  let again = false;
  let expiry = null;

  function scheduleExpiry() {
    // The banner goes when its track's time is up, even if nothing else arrives.
    clearTimeout(expiry);
    const banner = root.querySelector("#now-playing");
    if (!banner) return;
    const seconds = Number(banner.dataset.remaining || 0);
    expiry = setTimeout(function () { banner.remove(); }, Math.max(0, seconds) * 1000);
  }

  function swap(html, version) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    root.replaceChildren(...Array.from(doc.body.childNodes));
    shown = version;
    root.dataset.version = String(version);
    scheduleExpiry();
  }

  function refresh() {
    // One fetch at a time; events arriving meanwhile cost one more fetch, not one each.
    if (fetching) { again = true; return; }
    fetching = true;
    fetch(root.dataset.latestUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) return null;
        const version = Number(response.headers.get("X-Listen-Feed-Version") || 0);
        return response.text().then(function (html) {
          if (version >= shown) swap(html, version);
        });
      })
      .catch(function () { /* the next event tries again */ })
      .finally(function () {
        fetching = false;
        if (again) { again = false; setTimeout(refresh, 250); }
      });
  }

  const source = new EventSource(root.dataset.eventsUrl + "?after=" + encodeURIComponent(String(shown)));
  source.addEventListener("listens", function (event) {
    let data = null;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (data && Number(data.version) > shown) refresh();
  });
  scheduleExpiry();
})();
