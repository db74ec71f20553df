"""One module per resource; each exposes its handlers in ROUTES."""
