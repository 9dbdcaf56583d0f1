// The API reference (B9): Swagger UI, served from our own static files.
window.addEventListener("load", function () {
  "use strict";
  window.SwaggerUIBundle({
    url: "openapi.json",  // beside this page, whatever path prefix the app lives under
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
  });
});
