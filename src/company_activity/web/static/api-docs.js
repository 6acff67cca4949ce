// Swagger UI at /api/docs over the app's OpenAPI document (data-openapi of #swagger-ui). A file of its
// own because the Content-Security-Policy allows no inline script; Swagger UI's code comes from the
// installed fastapi-offline package, served as /static/swagger-ui-bundle.js. Nothing is fetched from
// anywhere else: no validator badge (validatorUrl null), no CDN.
(function () {
  "use strict";
  function start() {
    var root = document.getElementById("swagger-ui");
    if (!root || typeof SwaggerUIBundle === "undefined") {
      return;
    }
    window.ui = SwaggerUIBundle({
      url: root.getAttribute("data-openapi"),
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      docExpansion: "list",
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
