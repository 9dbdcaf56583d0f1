"""The web app: pages, the JSON API, auth."""
