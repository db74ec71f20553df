"""Reading posted form fields: strings only, bounded, never an upload; and a whole form read
as the API's own request contract, so a page validates exactly as the JSON route does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi
from litestar.exceptions import ValidationException

from contracts.text import LINE_PATTERN

T = TypeVar("T", bound=msgspec.Struct)

# Any one field of a contract form: longer text is refused before msgspec reads it.
FIELD_CHARS_MAX = 1_000
# What a `datetime-local` input sends: minutes (or seconds) and no offset; the console is UTC.
LOCAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")
# An ASCII whole number: "1e3", "1.0", " 2" or "²" stay text and msgspec refuses them.
WHOLE_NUMBER = re.compile(r"^-?[0-9]{1,20}$")
PATTERN_WORDS = {LINE_PATTERN: "on one line"}
MSGSPEC_FIELD = re.compile(r"`\$\.(\w+)`|required field `(\w+)`")


def text_field(form: Mapping[str, Any], name: str, chars_max: int, *, strip: bool = True) -> str:
    """The field's text ('' when absent), at most `chars_max` characters, else a 400."""
    value: Any = form.get(name, "")
    if not isinstance(value, str):
        raise ValidationException(f"{name} must be text")
    if strip:
        value = value.strip()
    if len(value) > chars_max:
        raise ValidationException(f"{name} is longer than {chars_max} characters")
    text: str = value
    return text


def required(form: Mapping[str, Any], name: str, chars_max: int) -> str:
    value = text_field(form, name, chars_max)
    if not value:
        raise ValidationException(f"{name} is required")
    return value


class FormInvalid(ValidationException):
    """A form the contract refuses, said in the form's words; `field` names the culprit."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def as_request(
    form: Mapping[str, Any],
    contract: type[T],
    labels: Mapping[str, str],
    formats: Mapping[str, str] | None = None,
) -> T:
    """The form's fields (query or body) as `contract`, converted by msgspec in strict mode as
    the JSON route's body is. An empty field is absent (the contract's default applies); other
    form fields (the CSRF token) are ignored. Refusals become a FormInvalid naming the field
    by its label (`labels`) and what it accepts, from the contract's own bounds (`formats` says
    in words what a field's pattern means)."""
    info = mi.type_info(contract)
    assert isinstance(info, mi.StructType), contract
    types = {f.encode_name: f.type for f in info.fields}
    values: dict[str, object] = {}
    for name, kind in types.items():
        try:
            text = text_field(form, name, FIELD_CHARS_MAX)
        except ValidationException:
            raise FormInvalid(
                f"{labels.get(name, name)} is longer than {FIELD_CHARS_MAX:,} characters.", name
            ) from None
        if text:
            values[name] = _typed(text, kind)
    try:
        return msgspec.convert(values, contract)
    except msgspec.ValidationError as exc:
        raise _refusal(str(exc), types, labels, formats or {}) from None


def _typed(text: str, kind: mi.Type) -> object:
    """A form's text as the JSON value a client would send for a field of this type."""
    if isinstance(kind, mi.IntType) and WHOLE_NUMBER.match(text):
        return int(text)
    if _is_datetime(kind) and LOCAL_DATETIME.match(text):
        return text + (":00" if len(text) == len("2026-01-01T00:00") else "") + "+00:00"
    return text


def _is_datetime(kind: mi.Type) -> bool:
    if isinstance(kind, mi.UnionType):
        return any(isinstance(t, mi.DateTimeType) for t in kind.types)
    return isinstance(kind, mi.DateTimeType)


def _refusal(
    error: str, types: Mapping[str, mi.Type], labels: Mapping[str, str], formats: Mapping[str, str]
) -> FormInvalid:
    found = MSGSPEC_FIELD.search(error)
    name = next((g for g in found.groups() if g), None) if found else None
    if name is None or name not in types:
        return FormInvalid(f"The form is not valid: {error}.", None)
    label = labels.get(name, name)
    if "missing required field" in error:
        return FormInvalid(f"{label} is required.", name)
    return FormInvalid(f"{label} must be {_accepts(types[name], formats.get(name))}.", name)


def _accepts(kind: mi.Type, format_words: str | None) -> str:
    """What a field of this type accepts, in words, from the contract's bounds."""
    if isinstance(kind, mi.UnionType):
        inner = [t for t in kind.types if not isinstance(t, mi.NoneType)]
        words = _accepts(inner[0], format_words) if len(inner) == 1 else "valid"
        return f"{words}, or empty" if len(inner) < len(kind.types) else words
    if isinstance(kind, mi.IntType):
        low = kind.ge if kind.ge is not None else kind.gt
        high = kind.le if kind.le is not None else kind.lt
        if low is not None and high is not None:
            return f"a whole number from {low:,} to {high:,}"
        return "a whole number"
    if isinstance(kind, mi.StrType):
        parts = []
        if kind.max_length is not None:
            parts.append(f"{kind.min_length or 0} to {kind.max_length:,} characters")
        if kind.pattern is not None:
            parts.append(format_words or PATTERN_WORDS.get(kind.pattern, "in the expected format"))
        return ", ".join(parts) or "text"
    if isinstance(kind, mi.DateTimeType):
        return "a date and time (UTC)"
    return "valid"
