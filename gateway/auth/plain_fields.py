"""Signature-Input and Signature in their plain shape, parsed without the generic parser.

`http_sf` parses any RFC 8941 dictionary, and it was about 4% of the server's CPU per signed
call (two fields a call). Partners send one shape, the SDK's: one label, an inner list of
sf-strings without parameters, parameters that are sf-strings or sf-integers; one byte
sequence. For exactly that shape, written without optional whitespace or escapes, this module
returns the value `http_sf.parse(value, tltype="dictionary")` returns; for anything else it
returns None and the caller parses with `http_sf` as before, so the refusals stay the
library's. tests/security/test_plain_fields.py checks the equality on random inputs.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

# RFC 8941 section 3.1.2: a key is lcalpha or "*", then lcalpha, DIGIT, "_", "-", ".", "*".
_KEY = r"[a-z*][a-z0-9_\-.*]{0,63}"
# An sf-string without escapes: printable ASCII except DQUOTE and backslash.
_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
_INTEGER = r"-?[0-9]{1,15}"
_INPUT = re.compile(
    rf"({_KEY})=\(((?:{_STRING}(?: {_STRING})*)?)\)((?:;{_KEY}=(?:{_STRING}|{_INTEGER}))*)"
)
_ITEM = re.compile(_STRING)
_PARAMETER = re.compile(rf";({_KEY})=({_STRING}|{_INTEGER})")
_SIGNATURE = re.compile(
    rf"({_KEY})=:((?:[A-Za-z0-9+/]{{4}})*(?:[A-Za-z0-9+/]{{2}}==|[A-Za-z0-9+/]{{3}}=)?):"
)
PARAMETERS_MAX = 8  # the SDK sends four; a longer list is left to http_sf


def signature_input(value: str) -> dict[str, Any] | None:
    """`{label: ([(component, {}), ...], {name: str | int})}`, as http_sf parses it; None when
    `value` is not in the plain shape."""
    match = _INPUT.fullmatch(value)
    if match is None:
        return None
    label, items, parameters = match.groups()
    components: list[tuple[str, dict[str, Any]]] = [
        (item[1:-1], {}) for item in _ITEM.findall(items)
    ]
    params: dict[str, str | int] = {}
    found = _PARAMETER.findall(parameters)
    if len(found) > PARAMETERS_MAX:
        return None
    for name, raw in found:
        if name in params:
            return None  # a repeated parameter: http_sf's rule decides which one stands
        params[name] = raw[1:-1] if raw.startswith('"') else int(raw)
    return {label: (components, params)}


def signature(value: str) -> dict[str, Any] | None:
    """`{label: (bytes, {})}`, as http_sf parses it; None when `value` is not in the plain
    shape (one member, canonical base64 between colons)."""
    match = _SIGNATURE.fullmatch(value)
    if match is None:
        return None
    label, encoded = match.groups()
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return None
    return {label: (decoded, {})}
