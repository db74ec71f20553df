"""Templates to text: the subject, the plain-text part and the HTML part of one message.

Each message is two templates per language, `templates/<locale>/<reason>.txt` (which also sets
`subject`) and `<reason>.html` (HTML-escaped automatically; the text part is not). Numbers,
dates and Russian plurals are formatted here, without a locale database: the two languages we
ship need little, and a missing variable fails loudly (StrictUndefined) instead of mailing a
blank.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from contracts.money import MINOR_DIGITS_BY_CURRENCY, MINOR_DIGITS_DEFAULT

__all__ = ["Rendered", "render"]

TEMPLATES_DIR = Path(__file__).parent / "templates"
NBSP = "\u00a0"
MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Russian text below is Cyrillic on purpose (RUF001 would read it as look-alike Latin).
MONTHS_RU_GENITIVE = (
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
)
TIER_NAMES = {
    "en": {"member": "Member", "silver": "Silver", "gold": "Gold"},
    "ru": {"member": "Участник", "silver": "Серебро", "gold": "Золото"},  # noqa: RUF001
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def plural_ru(n: int, one: str, few: str, many: str) -> str:
    """The Russian form for `n`: 1 балл, 2 балла, 5 баллов, 11 баллов, 21 балл."""
    tail = abs(n) % 100
    if 11 <= tail <= 14:
        return many
    last = tail % 10
    if last == 1:
        return one
    if 2 <= last <= 4:
        return few
    return many


def _number(locale: str, n: int) -> str:
    grouped = f"{n:,}"
    return grouped.replace(",", NBSP) if locale == "ru" else grouped


def _date(locale: str, moment: datetime) -> str:
    if locale == "ru":
        return f"{moment.day} {MONTHS_RU_GENITIVE[moment.month - 1]} {moment.year} г."  # noqa: RUF001
    return f"{moment.day} {MONTHS_EN[moment.month - 1]} {moment.year}"


def _money(locale: str, amount_minor: int, currency: str) -> str:
    digits = MINOR_DIGITS_BY_CURRENCY.get(currency, MINOR_DIGITS_DEFAULT)
    whole, part = divmod(abs(amount_minor), 10**digits)
    sign = "-" if amount_minor < 0 else ""
    fraction = f"{part:0{digits}d}" if digits else ""
    if locale == "ru":
        text = _number(locale, whole) + ("," + fraction if digits else "")
        return f"{sign}{text}{NBSP}{currency}"
    text = _number(locale, whole) + ("." + fraction if digits else "")
    return f"{currency}{NBSP}{sign}{text}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["plural_ru"] = plural_ru
    return env


_ENV = _environment()


def render(reason: str, locale: str, context: Mapping[str, Any]) -> Rendered:
    """The message `reason` in `locale`; `context` holds the event's values."""
    helpers = {
        "locale": locale,
        "number": lambda n: _number(locale, n),
        "date": lambda moment: _date(locale, moment),
        "money": lambda amount, currency: _money(locale, amount, currency),
        "tier_name": lambda name: TIER_NAMES[locale][name],
    }
    values = {**context, **helpers}
    text_module = _ENV.get_template(f"{locale}/{reason}.txt").make_module(values)
    subject = str(getattr(text_module, "subject", "")).strip()
    assert subject, f"{locale}/{reason}.txt sets no subject"
    html = _ENV.get_template(f"{locale}/{reason}.html").render(values)
    return Rendered(subject=subject, text=str(text_module).strip() + "\n", html=html)
