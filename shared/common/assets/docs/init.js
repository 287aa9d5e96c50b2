// Renders the OpenAPI document embedded in the /docs page with Swagger UI.
// A file of its own, not an inline script: the page's Content-Security-Policy
// runs scripts of the service's own origin only.
(function () {
  "use strict";
  var spec = JSON.parse(document.getElementById("openapi-document").textContent);
  window.ui = SwaggerUIBundle({
    spec: spec,
    dom_id: "#swagger-ui",
    // Off: the default posts the document to validator.swagger.io.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
