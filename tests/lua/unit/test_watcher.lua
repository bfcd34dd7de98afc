-- watcher.lua and /route-version: how a change of any key in Redis reaches every worker's cache.
local cjson = require "cjson.safe"
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

local VERSION_KEY = "toolforgectl:routes:version"
local CHANNEL = "__redis__:invalidate"
local HELLO = "http://10.0.0.1:8000"

local function state(key)
    local shdict = require "urlproxy.shdict"
    return shdict.state():get(shdict[key])
end

local function invalidated(...)
    return { "message", CHANNEL, { ... } }
end

-- Start the watcher in worker 0 and let it run until the shim's worker exits.
local function run()
    require("urlproxy.watcher").start()
    eq(shim.fire_timers(), 1, "timers fired")
end

-- `tool`'s routes read (by the slow path) while the watcher runs; then one clock tick passes.
local function read(...)
    local tools = { ... }
    return function()
        for _, tool in ipairs(tools) do
            unit.store(tool, { { ".*", HELLO } })
            require("urlproxy.routecache").routes(tool)
        end
    end
end

local function cached(tool)
    shim.clock = shim.clock + 0.001
    return require("urlproxy.routecache").cached(tool) ~= nil
end

case("it subscribes, tracks the route store's prefixes into that connection, and makes all stale", function()
    shim.redis.reads_left = 1
    run()
    eq(shim.redis.calls[1], "CLIENT ID", "first command")
    eq(shim.redis.calls[2], "SUBSCRIBE " .. CHANNEL, "then")
    eq(shim.redis.tracking, {
        "ON", "REDIRECT", 1, "BCAST", "PREFIX", "prefix:", "PREFIX", "redirect:",
        "PREFIX", "toolforgectl:block:", "PREFIX", VERSION_KEY,
        client = 2,
    }, "CLIENT TRACKING of the second connection")
    eq({ state("EPOCH"), require("urlproxy.changes").head() }, { 1, 1 }, "epoch and log head")
end)

case("a changed prefix:<tool> or redirect:<tool> makes that tool stale, and only that tool", function()
    shim.redis.inbox = {
        read("hello", "echo", "other"),
        invalidated("prefix:hello"),
        invalidated("redirect:echo", "prefix:" .. ("x"):rep(64), "unrelated:other"),
    }
    run()
    local fresh = { cached("hello"), cached("echo"), cached("other") }
    eq(fresh, { false, false, true }, "fresh: hello, echo, other")
end)

case("a changed block list makes the block lists stale, not any tool; its audit stream nothing", function()
    local blocks = require "urlproxy.blocks"
    shim.redis.inbox = {
        read("hello"),
        function()
            blocks.load()
        end,
        invalidated("toolforgectl:block:audit"),
        function()
            check(blocks.cached(), "fresh after the audit stream's change")
        end,
        invalidated("toolforgectl:block:user-agent"),
    }
    run()
    eq(cached("hello"), true, "hello fresh")
    eq(blocks.cached(), nil, "block lists fresh")
    check(blocks.current.stale, "the flag the front reads")
end)

case("nil instead of keys (FLUSHALL, a replica's full resync) makes every tool stale", function()
    shim.redis.inbox = { read("hello"), { "message", CHANNEL, ngx.null } }
    run()
    eq(cached("hello"), false, "hello fresh")
    eq(state("EPOCH"), 2, "epoch")
end)

case("/route-version shows the version a PING carried once its answer arrived", function()
    shim.redis.strings[VERSION_KEY] = "12"
    shim.redis.reads_left = 1
    run()
    check(shim.redis.calls[#shim.redis.calls]:find("PING 12", 1, true), "PING 12 sent")
    require("urlproxy.routeversion").serve()
    local answer = cjson.decode(table.concat(shim.output))
    eq(answer, { version = 12, epoch = 1, changes = 1, worker = 0 }, "answer")
    eq(ngx.header["Content-Type"], "application/json", "content type")
end)

case("/route-version answers nulls before the watcher first subscribed", function()
    require("urlproxy.routeversion").serve()
    local answer = cjson.decode(table.concat(shim.output))
    eq({ answer.version, answer.changes }, { cjson.null, cjson.null }, "version and changes")
end)

case("a change of the version key sends a PING with the new version at once", function()
    shim.redis.strings[VERSION_KEY] = "12"
    shim.redis.inbox = {
        function()
            shim.redis.strings[VERSION_KEY] = "13"
        end,
        invalidated(VERSION_KEY),
    }
    shim.redis.reads_left = 3
    run()
    eq(state("VERSION"), 13, "published version")
    local pings = {}
    for _, call in ipairs(shim.redis.calls) do
        pings[#pings + 1] = call:match("^PING (.*)") or nil
    end
    eq(pings, { "12", "13" }, "PINGs sent")
end)

case("a PING answered after one read timeout (a busy worker) does not count as Redis down", function()
    shim.redis.inbox = { "timeout" } -- read before the answer to the first PING
    shim.redis.reads_left = 3
    run()
    check(not require("urlproxy.redisconn").marked_down(), "Redis not marked down")
    eq({ state("EPOCH"), #shim.sleeps, #shim.logged("", ngx.ERR) }, { 1, 0, 0 }, "epoch, back-offs, errors")
    check(state("WATCHER_EVENT_AT"), "the answer counts as an event")
end)

case("a PING unanswered through two read timeouts: Redis is down; back off, resubscribe", function()
    shim.redis.inbox = {
        function()
            shim.redis.failing = true -- hung from here: no answers
        end,
    }
    shim.on_sleep = function()
        shim.redis.failing = false
    end
    shim.redis.reads_left = 8
    run()
    eq(#shim.logged("route store unavailable (backing off 0.25s): watcher: no answer to PING within 2000 ms",
        ngx.ERR), 1, "error lines")
    eq(shim.sleeps, { 0.25 }, "back-off")
    eq(state("EPOCH"), 2, "epoch: every tool stale after resubscribing")
    check(not require("urlproxy.redisconn").marked_down(), "Redis no longer marked down")
end)

case("a closed connection: Redis is down, then every tool is stale once it answers again", function()
    shim.redis.inbox = { read("hello"), "closed" }
    shim.redis.reads_left = 6
    run()
    eq(#shim.logged("watcher: subscriber connection: closed"), 1, "error lines")
    eq(state("EPOCH"), 2, "epoch")
    eq(cached("hello"), false, "hello fresh")
end)

case("while Redis refuses connections the watcher waits longer each time, logs once per interval", function()
    shim.redis.down = true
    shim.max_sleeps = 8
    run()
    eq(shim.sleeps, { 0.25, 0.5, 1, 2, 4, 5, 5, 5 }, "waits")
    -- Attempts at 0, 0.25, 0.75, 1.75, 3.75, 7.75, 12.75 and 17.75 s: lines at 0 and 12.75 s.
    eq(#shim.logs, 2, "log lines")
    eq(#shim.logged("(5 similar messages suppressed)"), 1, "lines with a count")
    eq(state("EPOCH"), nil, "epoch")
end)

case("the tracking connection gone: resubscribe, every tool stale, Redis not marked down", function()
    shim.redis.tracking_gone = true
    shim.on_sleep = function()
        shim.redis.tracking_gone = false
    end
    shim.redis.reads_left = 2
    run()
    eq(#shim.logged("route watcher: the tracking connection is gone"), 1, "error lines")
    check(not require("urlproxy.redisconn").marked_down(), "Redis not marked down")
    eq(state("EPOCH"), 2, "epoch")
end)

case("a Redis without CLIENT TRACKING (before 6): said clearly, routes cached by cache_ttl alone", function()
    shim.redis.no_tracking = true
    shim.max_sleeps = 2
    run()
    eq(#shim.logged("CLIENT TRACKING (needs Redis 6 or later)", ngx.ERR), 1, "error lines")
    check(not require("urlproxy.redisconn").marked_down(), "Redis not marked down")
    check(require("urlproxy.changes").head(), "caching works")
end)

case("only worker 0 watches; the others read what it publishes", function()
    ngx.worker.id = function()
        return 1
    end
    require("urlproxy.watcher").start()
    eq(#shim.timers, 0, "timers armed")
end)
