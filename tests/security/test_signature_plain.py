"""The guard's plain-shape signature check agrees with http-message-signatures.

`gateway.auth.signatures._verify_plain` verifies the common shape of a partner signature
without the library's generic machinery; whatever it does not accept, the library decides. So it
must never accept what the library refuses, and it must accept what partners send. Each case
here is signed over the signature base the library itself builds, then tampered with, and the
two verdicts are compared.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import itertools
import time
from typing import Any, cast

import http_sf
import pytest
from http_message_signatures import ContentDigest, HTTPMessageVerifier
from litestar import Request
from litestar.types import Scope

from contracts.signing import secret_bytes, sign_request
from gateway.auth import signatures
from gateway.partner_state import OpenedKey
from partners.onboarding import PartnerKey

KEY_ID = "pk_test_plain"
SECRET = "plain-secret-0123456789abcdefghijklmnop"
BODY = b'{"card_number":"9000000000000001","amount_minor":1234,"currency":"EUR"}'
DIGEST = "sha-256=:" + base64.b64encode(hashlib.sha256(BODY).digest()).decode() + ":"


def _opened(key_id: str = KEY_ID, secret: str = SECRET) -> OpenedKey:
    key = PartnerKey(key_id, 1, "shop", secret, revoked=False, rate_limit_per_s=100)
    return OpenedKey(
        key=key, verifier=signatures._verifier(key_id, secret), hmac_key=secret_bytes(secret)
    )


def _request(
    headers: list[tuple[str, str]],
    *,
    method: str = "POST",
    raw_path: bytes = b"/v1/purchases",
    query: bytes = b"",
    host: str = "127.0.0.1:8080",
) -> Request[Any, Any, Any]:
    raw = [(b"host", host.encode("latin-1"))] + [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
    ]
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": query,
        "headers": raw,
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
        "root_path": "",
        "state": {},
        "path_params": {},
    }
    return Request(cast(Scope, scope))


def _library_base(request: Request[Any, Any, Any], signature_input: str) -> bytes | None:
    """The signature base the library verifies `signature_input` against (None: it cannot)."""
    verifier = _opened().verifier
    message = signatures._Message(
        method=request.method.upper(),
        url=signatures._target_uri(request),
        headers=signatures._Headers(request.scope["headers"]),
    )
    try:
        parsed = verifier._parse_signature_dictionary(signature_input)
        ((_, sig_input),) = parsed.items()
        base, _, _ = verifier._build_signature_base(
            message, covered_component_ids=list(sig_input), signature_params=sig_input.params
        )
    except Exception:
        return None
    return str(base).encode()


def _library_accepts(request: Request[Any, Any, Any], opened: OpenedKey) -> bool:
    message = signatures._Message(
        method=request.method.upper(),
        url=signatures._target_uri(request),
        headers=signatures._Headers(request.scope["headers"]),
    )
    verifier: HTTPMessageVerifier = opened.verifier
    try:
        verifier.verify(message, max_age=datetime.timedelta(seconds=0))
    except Exception:
        return False
    return True


def _guard_accepts(request: Request[Any, Any, Any], opened: OpenedKey) -> tuple[bool, bool]:
    """(the plain check accepts, the guard's whole signature step accepts)."""
    try:
        parsed = signatures._parse_input(request)
    except signatures._Refused:
        return False, False
    plain = signatures._verify_plain(request, parsed, opened)
    try:
        signatures._verify_signature(request, parsed, opened)
    except signatures._Refused:
        return plain, False
    return plain, True


def _sig(base: bytes | None, label: str = "coalition", secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), base or b"", hashlib.sha256).digest()
    return f"{label}={http_sf.ser(mac)}"


def _check(
    signature_input: str,
    *,
    extra: list[tuple[str, str]] | None = None,
    signature: str | None = None,
    opened: OpenedKey | None = None,
    expect_plain: bool | None = None,
    **request_kwargs: Any,
) -> bool:
    """Sign the library's base (unless `signature` is given) and compare the verdicts."""
    opened = opened or _opened()
    headers = [("content-digest", DIGEST), *(extra or [])]
    probe = _request([*headers, ("signature-input", signature_input)], **request_kwargs)
    value = signature if signature is not None else _sig(_library_base(probe, signature_input))
    request = _request(
        [*headers, ("signature-input", signature_input), ("signature", value)], **request_kwargs
    )
    library = _library_accepts(request, opened)
    plain, guard = _guard_accepts(request, opened)
    assert not plain or library, "the plain check accepted what the library refuses"
    if expect_plain is not None:
        assert plain is expect_plain
    # The guard's verdict is the library's whenever the input gets that far.
    try:
        signatures._parse_input(request)
    except signatures._Refused:
        return guard
    assert guard is library
    return guard


def _input(
    components: tuple[str, ...] = ("@method", "@target-uri", "content-digest"),
    params: str | None = None,
    label: str = "coalition",
) -> str:
    created = int(time.time())
    covered = " ".join(f'"{c}"' for c in components)
    params = params or f';created={created};keyid="{KEY_ID}";alg="hmac-sha256";nonce="n0nce-123456"'
    return f"{label}=({covered}){params}"


def test_what_the_sdk_signs_takes_the_plain_path() -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k-1"}
    sign_request(
        "POST", "http://127.0.0.1:8080/v1/purchases", headers, BODY, key_id=KEY_ID, secret=SECRET
    )
    request = _request(list(headers.items()))
    assert _guard_accepts(request, _opened()) == (True, True)
    assert _library_accepts(request, _opened())
    sign_request(
        "GET", "http://127.0.0.1:8080/v1/shoppers/9%C3%A9?x=1&y=%20", headers := {}, b"",
        key_id=KEY_ID, secret=SECRET,
    )  # fmt: skip
    request = _request(
        list(headers.items()), method="GET", raw_path=b"/v1/shoppers/9%C3%A9", query=b"x=1&y=%20"
    )
    assert _guard_accepts(request, _opened()) == (True, True)


@pytest.mark.parametrize(
    "components",
    [
        *itertools.permutations(("@method", "@target-uri", "content-digest")),
        *itertools.permutations(("@method", "@target-uri")),
    ],
)
def test_component_orders_agree(components: tuple[str, ...]) -> None:
    assert _check(_input(components), expect_plain=True)
    assert not _check(_input(components), signature=_sig(b"something else"), expect_plain=False)


def test_parameter_orders_and_spellings_agree() -> None:
    created = int(time.time())
    names = {
        "created": f"created={created}",
        "keyid": f'keyid="{KEY_ID}"',
        "alg": 'alg="hmac-sha256"',
        "nonce": 'nonce="n0nce-123456"',
    }
    for order in itertools.permutations(names):
        assert _check(_input(params="".join(";" + names[n] for n in order)), expect_plain=True)
    without_alg = f';created={created};keyid="{KEY_ID}";nonce="n0nce-123456"'
    assert _check(_input(params=without_alg), expect_plain=True)
    # Not canonical on the wire: the library serializes the parsed value, and so does the check.
    spaced = f'coalition=( "@method"  "@target-uri" "content-digest" ){without_alg}'
    assert _check(spaced, expect_plain=True)
    duplicated = f";created={created - 5}" + without_alg
    assert _check(_input(params=duplicated))


def test_unusual_inputs_are_left_to_the_library() -> None:
    created = int(time.time())
    base = f';created={created};keyid="{KEY_ID}";nonce="n0nce-123456"'
    cases = [
        _input(params=base + ';tag="x"'),
        _input(params=base + f";expires={created + 60}"),
        _input(params=base + ";extra=1"),
        _input(("@method", "@target-uri", "content-digest", "content-type")),
        _input(("@method", "@target-uri", "@authority")),
        _input(("@method", "@target-uri", "@method")),
        'coalition=("@method";req "@target-uri" "content-digest")' + base,
        'coalition=("@method" "@target-uri" "content-digest";sf)' + base,
        'coalition=(@method "@target-uri" "content-digest")' + base,
        _input(params=f';created={created};keyid=tok;nonce="n0nce-123456"'),
        _input(params=f';created={created};keyid="{KEY_ID}";nonce="n0nce-123456";alg=x'),
        _input(params=f';created={created};keyid="{KEY_ID}";nonce="n0nce-123456";alg="ed25519"'),
        _input() + ", other=" + _input()[len("coalition=") :],
        _input() + ", coalition=" + _input()[len("coalition=") :],
    ]
    for signature_input in cases:
        _check(signature_input, extra=[("content-type", "application/json")], expect_plain=False)


def test_key_ids_with_escapes_agree() -> None:
    key_id = 'pk"odd\\id'
    opened = _opened(key_id=key_id)
    escaped = key_id.replace("\\", "\\\\").replace('"', '\\"')
    params = f';created={int(time.time())};keyid="{escaped}";nonce="n0nce-123456"'
    assert _check(_input(params=params), opened=opened, expect_plain=True)
    # Another key id than the key's: the library cannot resolve it.
    assert not _check(_input(), opened=_opened(key_id="pk_other"), expect_plain=False)
    assert not _check(_input(), opened=_opened(secret="another-secret"), expect_plain=False)


@pytest.mark.parametrize("offset_s", [-400, -302, -298, 0, 298, 302, 400])
def test_the_created_window_agrees(offset_s: int) -> None:
    created = int(time.time()) + offset_s
    params = f';created={created};keyid="{KEY_ID}";nonce="n0nce-123456"'
    assert _check(_input(params=params)) is (abs(offset_s) < 300)


def test_signature_field_shapes_agree() -> None:
    signature_input = _input()
    good = _sig(_library_base(_request([("content-digest", DIGEST)]), signature_input))
    mac = good[len("coalition=") :]
    unpadded = mac.rstrip(":").rstrip("=") + ":"
    cases = {
        good: True,
        " \t" + good + " ": True,
        "coalition=" + unpadded: True,
        "other=" + mac: False,
        good + ", other=" + mac: False,
        good + ";x=1": True,
        "coalition=(" + mac + ")": False,
        "coalition=" + mac + ", coalition=" + mac: False,
        'coalition="' + mac.strip(":") + '"': False,
        "coalition=:!!:": False,
        "coalition=:" + ("B" if mac[1] == "A" else "A") + mac[2:]: False,
    }
    for value, accepted in cases.items():
        assert _check(signature_input, signature=value) is accepted, value


@pytest.mark.parametrize(
    ("method", "raw_path", "query", "host"),
    [
        ("POST", b"/v1/purchases", b"", "127.0.0.1:8080"),
        ("GET", b"/v1/shoppers/123", b"a=1&b=%2F", "api.example.com"),
        ("GET", b"/v1/shoppers/12%203", b"", "API.Example.com:443"),
        ("GET", b"/v1/shoppers/12 3", b"", "127.0.0.1:8080"),
        ("GET", b"/v1/shoppers/\xc3\xa9", b"", "127.0.0.1:8080"),
        ("GET", b"/v1/shoppers/%zz", b"", "127.0.0.1:8080"),
        ("GET", b"/v1/shoppers/1", b"q=%", b"127.0.0.1:8080".decode()),
        ("GET", b"/v1/shoppers/1", b"q=#frag", "127.0.0.1:8080"),
        ("GET", b"/v1/shoppers/1", b"", "user@127.0.0.1:8080"),
        ("GET", b"/v1/shoppers/1", b"", "[::1]:8080"),
        ("GET", b"/v1/shoppers/1", b"", "127.0.0.1:"),
        ("OPTIONS", b"/v1/shoppers/1", b"", "127.0.0.1:8080"),
        ("M-SEARCH", b"/v1/shoppers/1", b"", "127.0.0.1:8080"),
        ("post", b"/v1/purchases", b"", "127.0.0.1:8080"),
    ],
)
def test_methods_and_targets_agree(method: str, raw_path: bytes, query: bytes, host: str) -> None:
    for components in [("@method", "@target-uri"), ("@target-uri", "@method", "content-digest")]:
        _check(_input(components), method=method, raw_path=raw_path, query=query, host=host)


def test_content_digest_field_lines_agree() -> None:
    signature_input = _input()
    for lines in [
        [("content-digest", DIGEST)],
        [("content-digest", "  " + DIGEST + "\t")],
        [("content-digest", DIGEST + ",\tsha-512=:AAAA:")],
        [("content-digest", DIGEST), ("content-digest", DIGEST)],
        [("content-digest", DIGEST + "\xe9")],
        [("content-digest", "")],
        [],
    ]:
        opened = _opened()
        names = [("signature-input", signature_input)]
        probe = _request([*lines, *names])
        value = _sig(_library_base(probe, signature_input))
        request = _request([*lines, *names, ("signature", value)])
        plain, guard = _guard_accepts(request, opened)
        library = _library_accepts(request, opened)
        assert not plain or library, lines
        assert guard is library, lines


def test_the_plain_digest_check_agrees_with_the_library() -> None:
    request = _request([("content-digest", DIGEST), ("signature-input", _input())])
    parsed = signatures._SignatureInput(
        "coalition", ("@method", "@target-uri", "content-digest"), KEY_ID, 0, "n", "", None
    )
    signatures._check_digest(request, parsed, BODY)
    for body in [BODY + b" ", b"", b"x"]:
        with pytest.raises(signatures._Refused) as refused:
            signatures._check_digest(request, parsed, body)
        assert refused.value.code.value in {"digest_mismatch", "signature_invalid"}
    # A last base64 character with stray low bits decodes to the same digest, as in http-sf.
    encoded = DIGEST[len("sha-256=:") : -1]
    for char in "AEIMQUYcgkosw048":
        odd = f"sha-256=:{encoded[:-2]}{char}=:"
        request = _request([("content-digest", odd)])
        try:
            signatures._check_digest(request, parsed, BODY)
            ours = True
        except signatures._Refused:
            ours = False
        try:
            ContentDigest.verify(odd, BODY)
            theirs = True
        except Exception:
            theirs = False
        assert ours is theirs, odd
