-- Rate limits are counted in rate_limit_shards (0080) since the gateway admits a call in one
-- statement; the per-key window table of 0010 is written by nothing and read by nothing.
DROP TABLE rate_limit_windows;
