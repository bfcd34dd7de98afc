-- wrk script: the requests of paths.lua at a fixed offered rate (BENCH_RATE requests/s in all)
-- instead of one right after each response, so every variant gets the same load.
--
-- One schedule for the run: slot n is due at start + n / rate. Whenever a connection is free to
-- send, delay() gives it the next slot and makes it wait until then. wrk's timers count whole
-- milliseconds, so the requests due within one millisecond leave together (about rate / 1000 at
-- each tick). A connection more than LATE_MS behind its slot (the start-up's TLS handshakes, or
-- a server that cannot keep up) skips the missed slots rather than sending them in one burst:
-- such a variant shows an achieved rate below the offered one.
local ffi = require "ffi"

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]]

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "paths.lua")

local CLOCK_MONOTONIC = 1
local LATE_MS = 5
local rate = tonumber(os.getenv("BENCH_RATE"))
local ts = ffi.new("bench_timespec")
local start, slot

local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

function delay() -- luacheck: ignore (wrk's hook)
    local now = now_ms()
    if not start then
        start, slot = now, 0
    end
    slot = slot + 1
    local wait = start + slot * 1000 / rate - now
    if wait < -LATE_MS then
        start = now - slot * 1000 / rate
        return 0
    end
    return wait > 0 and wait or 0
end
