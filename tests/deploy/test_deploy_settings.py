"""The settings this deployment adds: the replica DSN (masked like DATABASE_URL), its lag
bound and whether `coalition serve` migrates first."""

from __future__ import annotations

import pytest

from infra import settings

REPLICA = "postgresql://coalition:s3cret@replica:5432/coalition"


def test_replica_settings_are_read_and_the_password_masked() -> None:
    loaded = settings.load(
        {
            "COALITION_REPLICA_URL": REPLICA,
            "COALITION_REPLICA_LAG_MAX_S": "12",
            "COALITION_MIGRATE_ON_START": "0",
        }
    )
    assert loaded.replica_url == REPLICA
    assert loaded.replica_lag_max_s == 12
    assert loaded.migrate_on_start is False
    shown = loaded.masked()
    assert "s3cret" not in shown["replica_url"]
    assert shown["replica_url"] == "postgresql://coalition:***@replica:5432/coalition"


def test_defaults_keep_every_read_on_the_primary() -> None:
    loaded = settings.load({})
    assert loaded.replica_url is None
    assert loaded.replica_lag_max_s == 5
    assert loaded.migrate_on_start is True
    assert loaded.masked()["replica_url"] == "(unset)"


@pytest.mark.parametrize("raw", ["-1", "3601", "soon"])
def test_a_bad_lag_bound_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(settings.ConfigError, match="COALITION_REPLICA_LAG_MAX_S"):
        settings.load({"COALITION_REPLICA_LAG_MAX_S": raw})
