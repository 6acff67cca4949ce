// Draws every figure of the page: <div class="chart" data-figure="ID"> takes its figure from the JSON in
// <script type="application/json" id="ID">. Interactive: hover values, drag to zoom, double-click to reset.
(function () {
  "use strict";
  function draw() {
    if (typeof Plotly === "undefined") {
      return;
    }
    document.querySelectorAll("div.chart[data-figure]").forEach(function (div) {
      var source = document.getElementById(div.getAttribute("data-figure"));
      if (!source) {
        return;
      }
      var fig = JSON.parse(source.textContent);
      var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["sendDataToCloud"] };
      Plotly.newPlot(div, fig.data, fig.layout, config).then(function () {
        div.setAttribute("data-drawn", "true");
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
