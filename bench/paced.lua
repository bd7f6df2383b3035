-- wrk script for bench/paced_compare.py: the shared POST script (BENCH_POST_LUA), and each
-- connection waits BENCH_DELAY_MS after every answer before its next call, so the load
-- offered is about connections / (latency + delay), below what saturates the machine.
dofile(os.getenv("BENCH_POST_LUA"))
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "1")
function delay() return pause end
