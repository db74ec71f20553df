"""The schema stays ready for Citus (docs/scaling.md), read from a migrated database:
- every primary key, unique constraint and unique index of a distributed table includes its
  distribution column (Citus can only enforce uniqueness within one shard);
- no foreign key runs from a reference table to a distributed one;
- a foreign key between distributed tables joins their distribution columns (co-located).
It fails the day a migration breaks one of them."""

from __future__ import annotations

import asyncpg

# Distributed tables and their distribution column: the shopper id, so a shopper's rows are
# co-located on one worker (public.shoppers names it `id`).
DISTRIBUTED: dict[str, str] = {
    "public.shoppers": "id",
    "ledger.wallet": "shopper_id",
    "ledger.lot": "shopper_id",
    "ledger.hold": "shopper_id",
    "ledger.hold_lot": "shopper_id",
    "ledger.consumption": "shopper_id",
    "public.campaign_shopper_awards": "shopper_id",
    "public.purchase_lines": "shopper_id",
    "public.purchase_breakdown": "shopper_id",
    "public.shopper_stats": "shopper_id",
    "public.shopper_partner_stats": "shopper_id",
    "public.shopper_partner_months": "shopper_id",
    "public.shopper_category_stats": "shopper_id",
    "public.shopper_scores": "shopper_id",
    "public.shopper_segments": "shopper_id",
    "public.shopper_tiers": "shopper_id",
    "public.shopper_consents": "shopper_id",
    "public.shopper_partner_consents": "shopper_id",
}
# Reference tables: small, read everywhere, copied to every worker.
REFERENCE = frozenset(
    {
        "public.partners",
        "public.partner_pricing_versions",
        "public.partner_earn_rules",
        "public.partner_earn_categories",
        "public.campaigns",
        "public.network_settings",
        "settlement.cycle",
    }
)
# Known and planned for (docs/scaling.md): dropped by the distribution migration.
FOREIGN_KEYS_DROPPED_ON_DISTRIBUTION = frozenset(
    {
        # a merge links two shoppers, on two shards: the link is kept, checked by the merge
        "shoppers_merged_into_id_fkey",
    }
)

UNIQUE_KEYS = """
SELECT i.indexrelid::regclass::text AS name,
       array_agg(a.attname::text) FILTER (WHERE a.attname IS NOT NULL) AS columns
FROM pg_index i
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = $1::regclass AND i.indisunique
GROUP BY i.indexrelid
"""
FOREIGN_KEYS = """
SELECT c.conname, c.conrelid::regclass::text AS source, c.confrelid::regclass::text AS target,
       (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY
          AS k(num, n) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num)
          AS source_columns,
       (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY
          AS k(num, n) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num)
          AS target_columns
FROM pg_constraint c WHERE c.contype = 'f'
"""


def _qualified(name: str) -> str:
    return name if "." in name else f"public.{name}"


async def test_named_tables_exist(pool: asyncpg.Pool) -> None:
    names = [*DISTRIBUTED, *REFERENCE]
    found = await pool.fetch("SELECT to_regclass(n) AS t FROM unnest($1::text[]) AS n", names)
    assert all(row["t"] is not None for row in found), names


async def test_unique_keys_of_distributed_tables_include_the_distribution_column(
    pool: asyncpg.Pool,
) -> None:
    broken = []
    for table, column in DISTRIBUTED.items():
        for key in await pool.fetch(UNIQUE_KEYS, table):
            if column not in (key["columns"] or []):
                broken.append((table, key["name"], key["columns"]))
    assert not broken, f"unique keys Citus could not enforce across shards: {broken}"


async def test_no_foreign_key_from_a_reference_table_to_a_distributed_one(
    pool: asyncpg.Pool,
) -> None:
    keys = await pool.fetch(FOREIGN_KEYS)
    broken = [
        k["conname"]
        for k in keys
        if _qualified(k["source"]) in REFERENCE and _qualified(k["target"]) in DISTRIBUTED
    ]
    assert not broken, broken


async def test_foreign_keys_between_distributed_tables_join_their_distribution_columns(
    pool: asyncpg.Pool,
) -> None:
    keys = await pool.fetch(FOREIGN_KEYS)
    between = [
        k
        for k in keys
        if _qualified(k["source"]) in DISTRIBUTED and _qualified(k["target"]) in DISTRIBUTED
    ]
    assert between, "the shopper-keyed tables reference each other"
    broken = [
        k["conname"]
        for k in between
        if (DISTRIBUTED[_qualified(k["source"])], DISTRIBUTED[_qualified(k["target"])])
        not in zip(k["source_columns"], k["target_columns"], strict=True)
        and k["conname"] not in FOREIGN_KEYS_DROPPED_ON_DISTRIBUTION
    ]
    assert not broken, broken
