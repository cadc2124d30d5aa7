// The analytics page: a period change reloads the page with ?period= (kept in the URL), and the
// charts are drawn with the vendored Chart.js from the numbers the page carries as JSON. Every
// chart's numbers are also in a table on the page, so nothing depends on this script.
(() => {
  "use strict";

  const form = document.getElementById("period-form");
  const select = document.getElementById("period");
  if (form && select) {
    select.addEventListener("change", () => form.requestSubmit ? form.requestSubmit() : form.submit());
  }

  const source = document.getElementById("analytics-data");
  if (!source || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const style = getComputedStyle(document.documentElement);
  const accent = style.getPropertyValue("--accent").trim() || "#7a3b1e";
  const muted = style.getPropertyValue("--muted").trim() || "#5f6368";
  const Chart = window.Chart;
  Chart.defaults.color = muted;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.animation = false;

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return null;
    const chart = new Chart(canvas, config);
    canvas.dataset.drawn = "true";
    return chart;
  }

  const translucent = (color) => (/^#[0-9a-f]{6}$/i.test(color) ? color + "40" : color);
  const shorten = (text) => (text.length > 28 ? text.slice(0, 27) + "…" : text);

  draw("chart-top-artists", {
    type: "bar",
    data: {
      labels: data.top_artists.map((a) => shorten(a.name)),
      datasets: [{ label: data.labels.plays, data: data.top_artists.map((a) => a.plays), backgroundColor: accent }],
    },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  });

  draw("chart-discoveries", {
    type: "bar",
    data: {
      labels: data.discoveries.map((m) => m.month),
      datasets: [{ label: data.labels.artists, data: data.discoveries.map((m) => m.artists), backgroundColor: accent }],
    },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });

  draw("chart-over-time", {
    type: "line",
    data: {
      labels: data.over_time.map((m) => m.month),
      datasets: [
        { label: data.labels.all_plays, data: data.over_time.map((m) => m.plays), borderColor: muted,
          backgroundColor: muted, pointRadius: 0 },
        { label: data.labels.owned_plays, data: data.over_time.map((m) => m.owned_plays), borderColor: accent,
          backgroundColor: translucent(accent), pointRadius: 0, fill: "origin" },
      ],
    },
    options: { interaction: { mode: "index", intersect: false }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
})();
