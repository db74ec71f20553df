"""contracts.cursors: one id cursor for the campaign, challenge and webhook endpoint lists."""

from __future__ import annotations

import base64

from contracts import cursors


def test_a_cursor_answers_its_id_to_its_own_list_only() -> None:
    made = cursors.encode_id("c1:", 41)
    assert "=" not in made  # unpadded, safe in a query string as it is
    assert cursors.decode_id("c1:", made) == 41
    assert cursors.decode_id("ch1:", made) is None


def test_anything_not_made_here_is_none() -> None:
    too_big = base64.urlsafe_b64encode(f"c1:{2**63}".encode()).decode()
    for cursor in ("", "!!!", "%%", too_big, base64.urlsafe_b64encode(b"c1:-1").decode()):
        assert cursors.decode_id("c1:", cursor) is None, cursor
    assert cursors.decode_id("c1:", cursors.encode_id("c1:", cursors.ID_MAX)) == cursors.ID_MAX
