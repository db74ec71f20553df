"""Partners: tenants, pricing, API keys, partner operations (door: `partners.operations`)."""
