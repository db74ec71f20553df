"""The security-headers hook answers what its first, plainer version answered, on any headers.

`REFERENCE` below is that version (one `MutableScopeHeaders` lookup per header); the hook now
reads the route's headers in one pass. Generated header lists (mixed case, duplicates, the
hook's own names already set) and paths must come out identical.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from litestar.datastructures import MutableScopeHeaders

from gateway import security_headers
from gateway.security_headers import (
    API_PREFIX,
    CONTENT_SECURITY_POLICY,
    DOCUMENT_PREFIX,
    EVERY_ANSWER,
)


async def REFERENCE(message: Any, scope: Any) -> None:
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in EVERY_ANSWER.items():
        headers[name] = value
    path = str(scope.get("path", ""))
    if path.startswith(API_PREFIX) and "cache-control" not in headers:
        headers["Cache-Control"] = "no-store"
    content_type = headers.get("content-type") or ""
    is_page = content_type.startswith("text/html") and not path.startswith(DOCUMENT_PREFIX)
    if is_page and "content-security-policy" not in headers:
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY


NAMES = st.sampled_from(
    [
        b"content-type",
        b"Content-Type",
        b"content-length",
        b"cache-control",
        b"Cache-Control",
        b"x-frame-options",
        b"X-Frame-Options",
        b"referrer-policy",
        b"content-security-policy",
        b"x-request-id",
        b"ratelimit-remaining",
    ]
)
VALUES = st.sampled_from(
    [b"", b"text/html; charset=utf-8", b"application/json", b"max-age=60", b"SAMEORIGIN", b"1"]
)
PATHS = st.sampled_from(["/v1/purchases", "/v1/", "/console/", "/card/ab", "/schema/swagger", ""])


@given(
    unique=st.lists(st.tuples(NAMES, VALUES), max_size=8, unique_by=lambda h: h[0].lower()),
    repeated=st.none() | st.tuples(st.integers(0, 7), VALUES),
    path=PATHS,
    kind=st.sampled_from(["http.response.start", "http.response.body"]),
)
def test_the_hook_sets_what_the_reference_sets(
    unique: list[tuple[bytes, bytes]],
    repeated: tuple[int, bytes] | None,
    path: str,
    kind: str,
) -> None:
    # A name twice at most: with three, MutableScopeHeaders' own dedupe raises IndexError (in
    # the reference as well; no route sets one of these headers even twice).
    headers = list(unique)
    if repeated is not None and unique:
        index, value = repeated
        headers.append((unique[index % len(unique)][0], value))
    ours = {"type": kind, "status": 200, "headers": list(headers)}
    reference = {"type": kind, "status": 200, "headers": list(headers)}
    asyncio.run(security_headers.before_send(ours, {"path": path}))  # type: ignore[arg-type]
    asyncio.run(REFERENCE(reference, {"path": path}))
    assert ours == reference


def test_an_api_answer_gets_every_header_once() -> None:
    message = {"type": "http.response.start", "status": 201, "headers": []}
    asyncio.run(security_headers.before_send(message, {"path": "/v1/purchases"}))  # type: ignore[arg-type]
    names = [name for name, _ in message["headers"]]  # type: ignore[attr-defined]
    assert sorted(names) == sorted(
        [b"x-content-type-options", b"referrer-policy", b"x-frame-options", b"cache-control"]
    )
