"""The plain-shape parser of the signature fields agrees with http_sf wherever it answers.

`gateway.auth.plain_fields` parses the SDK's shape of Signature-Input and Signature without
http_sf; for anything else it answers None and the guard uses http_sf. So wherever it answers,
its value must be exactly http_sf's, and where http_sf refuses a value it must not answer.
The inputs are built near the plain shape (where a mistake would hide): labels, components and
parameters with the characters that matter (quotes, backslashes, spaces, non-ASCII, leading
zeros, long integers, repeated names), and base64 with and without padding.
"""

from __future__ import annotations

import base64
from typing import Any

import http_sf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from contracts.signing import sign_request
from gateway.auth import plain_fields

# Each strategy draws mostly plain values (so that both parsers often answer) and sometimes
# the characters and forms that are not.
_PLAIN_KEYS = st.sampled_from(["sig1", "sig", "*a", "a-b.c_d*", "keyid", "created", "nonce"])
KEYS = st.one_of(*[_PLAIN_KEYS] * 4, st.text(alphabet="abcAZ019_-.*", max_size=6))
_PLAIN_TEXT = st.text(alphabet="abc @-/:.~=+", max_size=8)
_ANY_TEXT = st.text(alphabet=st.sampled_from(list('abc @-/:"\\\t~é\x7f')), max_size=8)
STRINGS = st.one_of(*[_PLAIN_TEXT] * 4, _ANY_TEXT).map(lambda text: '"' + text + '"')
INTEGERS = st.one_of(
    st.integers(min_value=-(10**16), max_value=10**16).map(str),
    st.sampled_from(["007", "-0", "1.5", "", "-", "999999999999999", "1000000000000000"]),
)
SEPARATORS = st.sampled_from([" ", " ", " ", "", "  ", "\t", " ;"])


@st.composite
def signature_inputs(draw: st.DrawFn) -> str:
    items = draw(st.lists(STRINGS, max_size=4))
    separator = draw(SEPARATORS)
    parameters = draw(
        st.lists(st.tuples(KEYS, st.one_of(STRINGS, STRINGS, INTEGERS, st.just("?1"))), max_size=6)
    )
    text = f"{draw(KEYS)}=({separator.join(items)})" + "".join(
        f";{name}={value}" for name, value in parameters
    )
    return text + draw(st.sampled_from(["", "", "", " ", ",", ", sig2=()", ";"]))


@st.composite
def signatures(draw: st.DrawFn) -> str:
    raw = draw(st.binary(max_size=40))
    encoded = base64.b64encode(raw).decode()
    encoded = draw(
        st.sampled_from(
            [encoded, encoded, encoded.rstrip("="), encoded + "=", encoded.replace("+", "-")]
        )
    )
    suffix = draw(st.sampled_from(["", "", "", ";a=1", ", sig2=:AA==:", " "]))
    return f"{draw(KEYS)}=:{encoded}:{suffix}"


def _http_sf(value: str) -> Any:
    """http_sf's value, or None when it refuses `value`."""
    try:
        return http_sf.parse(value.encode("latin-1"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError):
        return None


@settings(max_examples=600, deadline=None)
@given(signature_inputs())
@example('sig1=("@method" "@target-uri");created=007;keyid="k";nonce="abcdefgh"')
@example('sig1=("a");k=1;k=2')
@example("sig1=();created=-0")
@example("sig1=();created=1000000000000000")  # 16 digits: not an sf-integer
def test_a_signature_input_parses_as_http_sf_parses_it(value: str) -> None:
    plain = plain_fields.signature_input(value)
    if plain is not None:
        assert plain == _http_sf(value), value


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.characters(max_codepoint=0x100), max_size=6),
    st.text(alphabet=st.characters(max_codepoint=0x100), max_size=6),
)
def test_a_plain_input_with_any_string_or_integer_parses_as_http_sf_parses_it(
    component: str, parameter: str
) -> None:
    """One shape, the characters varied: where a quoting or number rule would differ."""
    for value in (
        f'sig1=("{component}" "@method");keyid="{parameter}";created=1',
        f'sig1=("@method");created={parameter};nonce="{component}"',
    ):
        plain = plain_fields.signature_input(value)
        if plain is not None:
            assert plain == _http_sf(value), value


@settings(max_examples=400, deadline=None)
@given(signatures())
@example("sig1=:AAE=:")
@example("sig1=:AAF=:")
@example("sig1=::")
def test_a_signature_parses_as_http_sf_parses_it(value: str) -> None:
    plain = plain_fields.signature(value)
    if plain is not None:
        assert plain == _http_sf(value), value


def test_what_the_sdk_signs_takes_the_plain_shape() -> None:
    headers: dict[str, str] = {}
    sign_request(
        "POST",
        "http://127.0.0.1:8000/v1/purchases",
        headers,
        b'{"amount_minor":100}',
        key_id="pk_test_1",
        secret="secret-0123456789abcdefghijklmnop",
    )
    signature_input = plain_fields.signature_input(headers["Signature-Input"])
    signature = plain_fields.signature(headers["Signature"])
    assert signature_input is not None
    assert signature_input == _http_sf(headers["Signature-Input"])
    assert signature is not None
    assert signature == _http_sf(headers["Signature"])


def test_anything_else_is_left_to_http_sf() -> None:
    for value in (
        ' sig1=("@method")',  # leading space: http_sf's rules
        'sig1=("@method";sf)',  # a component with parameters
        'sig1=("@method"),sig2=("@method")',  # two signatures
        'sig1=("a\\"b")',  # an escape
        "sig1=(@method)",  # a token, not a string
        'sig1=("@method");created=1;created=2',  # a repeated parameter
    ):
        assert plain_fields.signature_input(value) is None, value
    for value in ("sig1=:AA:", "sig1=:AA==:;a=1", "sig1=:AA==:, sig2=:AA==:"):
        assert plain_fields.signature(value) is None, value
