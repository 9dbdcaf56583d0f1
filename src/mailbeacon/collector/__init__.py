"""The tracking endpoints: a small ASGI app kept free of the web framework."""
