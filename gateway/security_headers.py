"""Security headers on every answer (OWASP API8, security misconfiguration).

One `before_send` hook rather than per-route headers, so a new route cannot forget them:
- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`
  on every answer, pages and API alike;
- `Cache-Control: no-store` on every `/v1/` answer (they are authenticated, or refusals of
  authentication) unless the route set its own;
- a Content-Security-Policy on HTML pages: the console and the card use only self-hosted JS and
  CSS, and their one inline `<script>` is a JSON data block (never executed), so `'self'` is
  enough and no `'unsafe-inline'` is needed. The OpenAPI renderers under `/schema` load their JS
  from a CDN and inline it, so they keep no CSP (they serve only the public document).

Litestar has no security-headers config of its own (its `CORSConfig` and `CSRFConfig` cover
other things); CORS stays closed because the app sets no `cors_config`: a cross-origin preflight
gets no `Access-Control-Allow-Origin`.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
EVERY_ANSWER = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
API_PREFIX = "/v1/"
DOCUMENT_PREFIX = "/schema"


# As sent (ASGI header names are lower case bytes); see before_send.
_EVERY_ANSWER_RAW = [
    (name.lower().encode(), value.encode()) for name, value in EVERY_ANSWER.items()
]


async def before_send(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    # One pass over what the route set, instead of a scan of the list per header set: this hook
    # runs on every answer of the hot path.
    present = _first_values(headers.headers)
    for name, value in _EVERY_ANSWER_RAW:
        if name in present:  # rare: overwrite (and dedupe) as MutableScopeHeaders does
            headers[name.decode()] = value.decode()
        else:
            headers.headers.append((name, value))
    path = str(scope.get("path", ""))
    if path.startswith(API_PREFIX) and b"cache-control" not in present:
        headers.headers.append((b"cache-control", b"no-store"))
    content_type = present.get(b"content-type", b"").decode("latin-1")
    is_page = content_type.startswith("text/html") and not path.startswith(DOCUMENT_PREFIX)
    if is_page and b"content-security-policy" not in present:  # the card sets a stricter one
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY


def _first_values(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Each header name (lower case) with its first value, as MutableScopeHeaders.get reads."""
    present: dict[bytes, bytes] = {}
    for name, value in headers:
        present.setdefault(name.lower(), value)
    return present
