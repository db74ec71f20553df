"""The event catalogue is public, lists every webhook type with a valid JSON Schema, and the
copy in docs/ is the one the service serves."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema_rs

from contracts.events import CATALOGUE_PATH, EVENT_TYPES

DOCS_COPY = Path(__file__).parents[2] / "docs" / "event-catalogue.json"


async def test_the_catalogue_is_served_without_authentication(http: httpx.AsyncClient) -> None:
    response = await http.get(CATALOGUE_PATH)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["type"] for item in items] == list(EVENT_TYPES)
    for item in items:
        assert item["description"]
        jsonschema_rs.meta.validate(item["schema"])  # a valid 2020-12 schema
        assert item["schema"]["type"] == "object"
        assert "card_number" not in item["schema"]["properties"]


async def test_the_docs_copy_is_what_the_service_serves(http: httpx.AsyncClient) -> None:
    served = (await http.get(CATALOGUE_PATH)).json()
    assert json.loads(DOCS_COPY.read_text()) == served, (
        "docs/event-catalogue.json is stale: python -m contracts.events > docs/event-catalogue.json"
    )


async def test_the_catalogue_is_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    document = (await http.get("/schema")).json()
    assert "get" in document["paths"][CATALOGUE_PATH]
