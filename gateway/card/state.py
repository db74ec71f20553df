"""Per-app objects of the card page, built on first use and kept on `app.state`."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from litestar import Request

from gateway.card import mailer
from gateway.card.sessions import CodeHasher
from partners import keybox

CODE_KEY_INFO = b"coalition card sign-in codes"
CODE_KEY_BYTES = 32
_HASHER_ATTR = "card_code_hasher"
_MAIL_ATTR = "card_mail"


def code_hasher(request: Request[Any, Any, Any]) -> CodeHasher:
    """The codes' HMAC key, derived from the master key (as the phone hasher's is)."""
    hasher = getattr(request.app.state, _HASHER_ATTR, None)
    if isinstance(hasher, CodeHasher):
        return hasher
    settings = request.app.state.app.settings
    if settings.master_key:
        master_key = keybox.parse_master_key(settings.master_key)
    else:
        keybox.load_or_create(settings.data_dir, None)  # the file exists from here on
        master_key = keybox.parse_master_key(
            (settings.data_dir / keybox.KEY_FILE_NAME).read_text(encoding="utf-8")
        )
    key = HKDF(
        algorithm=hashes.SHA256(), length=CODE_KEY_BYTES, salt=None, info=CODE_KEY_INFO
    ).derive(master_key)
    hasher = CodeHasher(key)
    setattr(request.app.state, _HASHER_ATTR, hasher)
    return hasher


def code_mail(request: Request[Any, Any, Any]) -> mailer.CodeMail:
    mail = getattr(request.app.state, _MAIL_ATTR, None)
    if mail is None:
        mail = mailer.code_mail(request.app.state.app.settings)
        setattr(request.app.state, _MAIL_ATTR, mail)
    return mail
