-- Issue 7: the set-based functions of a group commit plan with index access only.
-- Each touches at most a group's rows per table (≤ 32 calls), every one by key, so an index
-- scan is always the right plan. But plpgsql caches a generic plan per statement and backend,
-- made from the statistics of the moment: a plan made while a table was small (a fresh
-- database, a bench after its warm-up) seq-scans it, and keeps doing so as the table grows
-- until an ANALYZE invalidates it. Seen with auto_explain in `coalition bench`: the wallet
-- UPDATE of ledger.earn_many planned for 880 wallets and still seq-scanning at 40,000 (81 µs
-- of PostgreSQL time per purchase against 9 µs with the index), the tier qualification seq-
-- scanning partner_transactions (8-9 ms per call). Run-to-run throughput moved with which
-- pooled connections happened to hold such plans.
-- enable_seqscan = off only prices seq scans out (a table with no usable index still gets
-- one); it holds while these functions run, statements they call included.
ALTER FUNCTION ledger.earn_many(ledger.earn_request[], bigint[]) SET enable_seqscan = off;
ALTER FUNCTION partner_purchase_write_many(
    timestamptz, bigint[], uuid[], bigint[], text[], bigint[], text[], bigint[], integer[],
    bigint[], timestamptz[], text[], text[], bigint[], jsonb[], jsonb[], integer[], text[],
    bigint[], integer[], text[], bigint[], bigint[], text[], text[], bigint[], bigint[])
    SET enable_seqscan = off;
ALTER FUNCTION gateway_admit_many(
    text[], text[], integer[], bigint[], bigint[], integer[], bigint[], text[])
    SET enable_seqscan = off;
