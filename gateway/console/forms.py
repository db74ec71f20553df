"""Reading posted form fields: strings only, bounded, never an upload."""

from __future__ import annotations

from typing import Any

from litestar.datastructures import FormMultiDict
from litestar.exceptions import ValidationException


def text_field(form: FormMultiDict, name: str, chars_max: int, *, strip: bool = True) -> str:
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


def required(form: FormMultiDict, name: str, chars_max: int) -> str:
    value = text_field(form, name, chars_max)
    if not value:
        raise ValidationException(f"{name} is required")
    return value
