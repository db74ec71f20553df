"""Request bodies decoded strictly, straight into the handler's contract, in one place.

Litestar decodes a JSON body to builtins and then converts it to the handler's `data` type with
msgspec in lax mode (`strict=False`, which its signature model needs for query strings), so
`"amount_minor": "1000"` became the integer 1000. Here the body is decoded once, with the
contract as the target type and `strict=True`: a number is a JSON number, a boolean a JSON
boolean. The signature model then receives the decoded Struct and passes it through unchanged.

Bytes that are not UTF-8 (msgspec raises `UnicodeDecodeError` for them, which is not a
`DecodeError`) are the caller's error: 400 `malformed_json` instead of an unhandled 500.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.types import Empty

from contracts.errors import ErrorCode
from gateway.errors import ApiError

# msgspec's messages end with the location of the bad value: "... - at `$.lines[0].sku`".
_LOCATION = re.compile(r"^(?P<message>.*?)(?: - at `\$\.?(?P<key>[^`]*)`)?$", re.DOTALL)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decoder_for(annotation: Any) -> msgspec.json.Decoder[Any]:
    """One strict decoder per contract type, built on first use."""
    found = _decoders.get(annotation)
    if found is None:
        found = _decoders[annotation] = msgspec.json.Decoder(annotation, strict=True)
    return found


def decode(body: bytes, annotation: Any) -> Any:
    """The body as `annotation`, strictly; a 400 problem when it is not one."""
    try:
        return decoder_for(annotation).decode(body)
    except UnicodeDecodeError:
        raise ApiError(
            400, ErrorCode.MALFORMED_JSON, "the request body is not valid UTF-8"
        ) from None
    except msgspec.ValidationError as exc:
        raise ValidationException(detail="Validation failed", extra=[_error(str(exc))]) from exc
    except msgspec.DecodeError as exc:
        raise ApiError(
            400, ErrorCode.MALFORMED_JSON, f"the request body is not JSON: {exc}"
        ) from exc


def _error(text: str) -> dict[str, str]:
    found = _LOCATION.match(text)
    assert found is not None  # the pattern matches every string
    error = {"message": found["message"], "source": "body"}
    if found["key"]:
        error["key"] = found["key"]
    return error


class StrictJSONRequest(Request[Any, Any, Any]):
    """`Request.json()` decoding into the route's `data` contract with strict types."""

    async def json(self) -> Any:
        if self._json is Empty:
            cached = self._connection_state.json
            if cached is not Empty:
                self._json = cached
            else:
                annotation = self._data_annotation()
                body = await self.body()
                if annotation is None:
                    self._json = await super().json()
                else:
                    self._json = self._connection_state.json = decode(body or b"null", annotation)
        return self._json

    def _data_annotation(self) -> Any:
        """The handler's `data` type, or None when it takes no JSON body."""
        parameter = self.route_handler.parsed_fn_signature.parameters.get("data")
        return None if parameter is None else parameter.annotation
