from __future__ import annotations

import pytest

from infra.settings import ConfigError, load, mask_dsn


def test_defaults_bind_to_loopback_and_use_the_embedded_database() -> None:
    settings = load({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.database_url is None
    assert settings.masked()["database_url"] == "(embedded)"


def test_secrets_and_passwords_are_masked() -> None:
    settings = load(
        {
            "DATABASE_URL": "postgresql://app:hunter2@db:5432/coalition",
            "COALITION_MASTER_KEY": "k" * 32,
        }
    )
    shown = settings.masked()
    assert "hunter2" not in str(shown)
    assert shown["database_url"] == "postgresql://app:***@db:5432/coalition"
    assert shown["master_key"] == "***"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COALITION_PORT": "eighty"}, "COALITION_PORT"),
        ({"COALITION_PORT": "70000"}, "outside"),
        ({"COALITION_DEBUG": "maybe"}, "boolean"),
        ({"COALITION_CURRENCY": "euro"}, "ISO 4217"),
        ({"COALITION_DB_POOL_MAX": "0"}, "COALITION_DB_POOL_MAX"),
        ({"COALITION_GROUP_COMMIT_LANES": "10"}, "below COALITION_DB_POOL_MAX=10"),
        ({"COALITION_GROUP_COMMIT_SIZE_MAX": "33"}, "COALITION_GROUP_COMMIT_SIZE_MAX"),
        ({"COALITION_GROUP_COMMIT_SIZE_MAX": "0"}, "outside"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(env)


def test_mask_dsn_leaves_passwordless_dsns_alone() -> None:
    assert mask_dsn("postgresql://postgres:@/postgres?host=/tmp/x") == (
        "postgresql://postgres:***@/postgres?host=/tmp/x"
    )
    assert mask_dsn("postgresql://db/coalition") == "postgresql://db/coalition"


def test_group_commit_leaves_a_connection_for_reads_and_workers() -> None:
    assert load({}).group_commit_lanes == 4
    assert load({"COALITION_DB_POOL_MAX": "3"}).group_commit_lanes == 2
    assert load({"COALITION_DB_POOL_MAX": "1"}).group_commit_lanes == 0  # grouping off
    assert load({"COALITION_GROUP_COMMIT_LANES": "0"}).group_commit_lanes == 0
