-- 024_cache_memory: the hint cache's rows by age, for the workers' copies in memory and for
-- retention. A similarity lookup in PostgreSQL (atende_coach_admit, after the exact probe)
-- compares the new text with every candidate row: 6.5 ms per lookup at 2,000 msg/s with the
-- AI (test/bench_pg.py, BENCH_AI_LATENCY_MS=1500), the largest statement of the AI path, and
-- it grows with the table, which nothing pruned (a lookup only skips rows older than
-- cache.ttl_s). Each worker now keeps the recent rows in memory (worker/simcache.c, filled
-- by `created_at > last seen`) and asks PostgreSQL only on a miss; `atende retention`
-- deletes the rows older than cache.ttl_s.
CREATE INDEX hint_cache_created ON hint_cache (created_at);
