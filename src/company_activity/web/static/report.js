// The one-file report (company-activity report) embeds each series once: an array several figures share is
// in the pool <script type="application/json" id="report-shared">, and a figure refers to it as
// {"$shared": n}. This puts the arrays back into each figure's JSON before app.js draws the charts (it is
// inlined before app.js). Nothing is fetched: the report opens offline.
(function () {
  "use strict";
  var source = document.getElementById("report-shared");
  if (!source) {
    return;
  }
  var pool = JSON.parse(source.textContent);
  function resolve(value) {
    if (Array.isArray(value)) {
      return value.map(resolve);
    }
    if (value !== null && typeof value === "object") {
      var keys = Object.keys(value);
      if (keys.length === 1 && keys[0] === "$shared") {
        return pool[value.$shared];
      }
      var out = {};
      keys.forEach(function (k) {
        out[k] = resolve(value[k]);
      });
      return out;
    }
    return value;
  }
  document.querySelectorAll("div.chart[data-figure]").forEach(function (div) {
    var data = document.getElementById(div.getAttribute("data-figure"));
    if (data) {
      data.textContent = JSON.stringify(resolve(JSON.parse(data.textContent)));
    }
  });
})();
