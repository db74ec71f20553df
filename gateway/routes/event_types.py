"""The public event catalogue: every webhook event type with the JSON Schema of its data."""

from __future__ import annotations

from litestar import get

from contracts.events import CATALOGUE_PATH, EventCatalogue, catalogue

_CATALOGUE = catalogue()  # built from the contracts once: it changes only with the code


@get(
    CATALOGUE_PATH,
    sync_to_thread=False,
    summary="The webhook event catalogue",
    description="Every event type a webhook endpoint can subscribe to, what it means, and the "
    "JSON Schema (2020-12) of its `data`. Public: no authentication.",
    tags=["events"],
    opt={"skip_rate_limit": True},
)
def event_types() -> EventCatalogue:
    return _CATALOGUE


ROUTES = [event_types]
