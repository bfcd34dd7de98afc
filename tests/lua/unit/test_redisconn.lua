-- redisconn.lua: the back-off after Redis failures, and error lines that cannot flood the log.
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

case("the back-off starts at redis_backoff_ms and doubles per failure up to redis_backoff_max_ms", function()
    local redisconn = require "urlproxy.redisconn"
    local waits = {}
    for failures = 1, 7 do
        waits[failures] = redisconn.backoff(failures)
    end
    eq(waits, { 0.25, 0.5, 1, 2, 4, 5, 5 }, "back-off in seconds")
    eq(redisconn.backoff(10000), 5, "back-off after very many failures")
    unit.configure({ redis_backoff_ms = 100, redis_backoff_max_ms = 300 })
    local tuned = { redisconn.backoff(1), redisconn.backoff(2), redisconn.backoff(3) }
    eq(tuned, { 0.1, 0.2, 0.3 }, "tuned back-off")
end)

case("each failure in a row keeps requests off Redis longer", function()
    local redisconn = require "urlproxy.redisconn"
    redisconn.mark_down("refused")
    check(not redisconn.available(), "unavailable right after the failure")
    shim.clock = shim.clock + 0.25
    check(redisconn.available(), "available after 0.25 s")
    redisconn.mark_down("refused again")
    shim.clock = shim.clock + 0.49
    check(not redisconn.available(), "unavailable 0.49 s after the second failure")
    shim.clock = shim.clock + 0.01
    check(redisconn.available(), "available 0.5 s after the second failure")
end)

case("Redis answering again resets the back-off to its first step", function()
    local redisconn = require "urlproxy.redisconn"
    redisconn.mark_down("refused")
    redisconn.mark_down("refused")
    eq(redisconn.mark_up(), true, "mark_up: it had been down")
    eq(redisconn.mark_up(), false, "mark_up again")
    check(redisconn.available() and not redisconn.marked_down(), "available and not marked down")
    redisconn.mark_down("refused")
    shim.clock = shim.clock + 0.25
    check(redisconn.available(), "available 0.25 s after a new first failure")
end)

case("an error line repeats at most once per error_log_interval, counting what it skipped", function()
    unit.configure({ error_log_interval = 10 })
    local redisconn = require "urlproxy.redisconn"
    for _ = 1, 3 do
        redisconn.log_error("HGETALL prefix:x: timeout")
    end
    eq(#shim.logged("urlproxy: HGETALL", ngx.ERR), 1, "error lines in the first interval")
    shim.clock = shim.clock + 9.999
    redisconn.log_error("HGETALL prefix:x: timeout")
    eq(#shim.logs, 1, "lines before the interval ends")
    shim.clock = shim.clock + 0.001
    redisconn.log_error("HGETALL prefix:x: timeout")
    eq(#shim.logged("(3 similar messages suppressed)"), 1, "line with the count")
    shim.clock = shim.clock + 10
    redisconn.log_error("HGETALL prefix:x: timeout")
    eq(#shim.logged("suppressed"), 1, "a line after a quiet interval has no count")
end)

case("the workers share one gate: a line another worker wrote holds this worker's back", function()
    unit.configure({ error_log_interval = 10 })
    require("urlproxy.redisconn").log_error("from worker 0")
    for name in pairs(package.loaded) do
        if name:sub(1, 9) == "urlproxy." then
            package.loaded[name] = nil -- another worker: its own modules, the same shared dicts
        end
    end
    unit.configure({ error_log_interval = 10 })
    local other = require "urlproxy.redisconn"
    other.log_error("from worker 1")
    eq(#shim.logs, 1, "log lines")
    shim.clock = shim.clock + 10
    other.log_error("from worker 1")
    local expected = { "urlproxy: from worker 1 (1 similar messages suppressed)" }
    eq(shim.logged("suppressed"), expected, "line after the interval")
end)

case("connections go to the proxy's Redis and db, and back to the keepalive pool", function()
    unit.configure({ redis_db = 3 })
    local redisconn = require "urlproxy.redisconn"
    local red = assert(redisconn.connect())
    redisconn.release(red)
    eq(shim.redis.calls, { "SELECT 3" }, "commands")
    shim.redis.failing = true
    local none, err = redisconn.connect()
    eq(none, nil, "client when SELECT fails")
    check(err:find("select 3: timeout", 1, true), "error names the SELECT: " .. tostring(err))
end)
