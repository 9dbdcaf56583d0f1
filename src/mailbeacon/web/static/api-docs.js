// The API reference (B9): Swagger UI, served from our own static files.
window.addEventListener("load", function () {
  "use strict";
  window.SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
  });
});
