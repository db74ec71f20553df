"""A console form read as the API's request contract: what the JSON route accepts, the form
accepts; what it refuses, the form refuses in the field's own words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.partners import PartnerCreate, PricingVersionCreate
from gateway.console.forms import FIELD_CHARS_MAX, FormInvalid, as_request

LABELS = {"name": "Name", "slug": "Slug", "earn_points": "Points earned", "effective_at": "From"}
TERMS = {
    "issue_price_micros": "10000",
    "redemption_price_micros": "8000",
    "earn_points": "1",
    "earn_spend_minor": "100",
}
PARTNER = {"name": "Corner Bakery", "slug": "corner-bakery", **TERMS}


def test_a_valid_form_is_the_contract_with_its_defaults_and_other_fields_ignored() -> None:
    req = as_request({**PARTNER, "_csrf_token": "t", "rate_limit_per_s": ""}, PartnerCreate, LABELS)
    assert req == PartnerCreate(
        name="Corner Bakery",
        slug="corner-bakery",
        issue_price_micros=10_000,
        redemption_price_micros=8_000,
        earn_points=1,
        earn_spend_minor=100,
    )
    assert req.rate_limit_per_s == 100  # empty is absent: the contract's default


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "Name is required."),
        ("name", "x" * 201, "Name must be 1 to 200 characters, on one line."),
        ("name", "a\x07b", "Name must be 1 to 200 characters, on one line."),
        ("name", "x" * (FIELD_CHARS_MAX + 1), "Name is longer than 1,000 characters."),
        ("slug", "Not A Slug", "Slug must be in the expected format."),
        ("earn_points", "-1", "Points earned must be a whole number from 0 to 1,000,000."),
        ("earn_points", "1.5", "Points earned must be a whole number from 0 to 1,000,000."),
        ("earn_points", "1e3", "Points earned must be a whole number from 0 to 1,000,000."),
        ("earn_points", "²", "Points earned must be a whole number from 0 to 1,000,000."),
        ("earn_points", "99999999999999999999999", "Points earned must be a whole number"),
    ],
)
def test_a_refused_field_is_named_with_what_it_accepts(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(FormInvalid) as refused:
        as_request({**PARTNER, field: value}, PartnerCreate, LABELS)
    assert refused.value.field == field
    assert refused.value.message.startswith(message)
    assert refused.value.status_code == 400


def test_a_datetime_local_value_is_read_as_utc_and_an_offset_is_kept() -> None:
    local = as_request({**TERMS, "effective_at": "2030-01-02T03:04"}, PricingVersionCreate, LABELS)
    assert local.effective_at == datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    offset = as_request(
        {**TERMS, "effective_at": "2030-01-02T03:04:05+02:00"}, PricingVersionCreate, LABELS
    )
    assert offset.effective_at is not None
    assert offset.effective_at.utcoffset() is not None
    assert as_request(TERMS, PricingVersionCreate, LABELS).effective_at is None
    with pytest.raises(FormInvalid, match="From must be a date and time"):
        as_request({**TERMS, "effective_at": "1e9"}, PricingVersionCreate, LABELS)
