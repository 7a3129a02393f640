// Renders the OpenAPI document named by #api-reference's data-openapi-url with the vendored
// Swagger UI (static/vendor/swagger-ui/). A file of its own: the pages' CSP allows no inline
// script.
"use strict";

(function () {
  const root = document.getElementById("api-reference");
  if (!root || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  window.apiReference = window.SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    layout: "BaseLayout",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    tryItOutEnabled: false,
    validatorUrl: null, // never send the document to an outside validator
  });
})();
