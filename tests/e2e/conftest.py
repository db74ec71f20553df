from __future__ import annotations

from tests.support.http_fixtures import base_url, data_dir, http, signing_key

__all__ = ["base_url", "data_dir", "http", "signing_key"]  # the fixtures, shared
