-- routecache.lua: when a tool's cached routes are fresh, when Redis is asked, what is served when it fails.
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

local HELLO = "http://10.0.0.1:8000"
local ECHO = "http://10.0.0.2:8000"

local function calls()
    return #shim.redis.calls
end

-- The urlproxy modules as another worker of the same nginx loads them: its own tables, the same
-- shared dicts and Redis.
local function another_worker()
    for name in pairs(package.loaded) do
        if name:sub(1, 9) == "urlproxy." then
            package.loaded[name] = nil
        end
    end
    unit.configure()
    return require "urlproxy.routecache"
end

-- routecache with `tools` ({name, url} each) read from Redis into this worker's cache at clock 1000,
-- with cache_ttl 60.
local function read_into_cache(tools)
    unit.configure({ cache_ttl = 60 })
    local routecache = require "urlproxy.routecache"
    for _, tool in ipairs(tools) do
        unit.store(tool[1], { { ".*", tool[2] } })
    end
    unit.watching()
    for _, tool in ipairs(tools) do
        routecache.routes(tool[1])
    end
    return routecache
end

case("a tool is read from Redis once, then served from the worker's cache", function()
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    local routes = routecache.routes("hello")
    eq({ unpack(routes) }, { ".*", HELLO }, "routes")
    eq({ routes.token, routes.at }, { 1, 1000 }, "stamped with the invalidation log's head and time read")
    eq(calls(), 1, "Redis commands")
    shim.clock = 1001
    eq(routecache.cached("hello")[2], HELLO, "cached backend")
    eq(routecache.routes("hello")[2], HELLO, "backend")
    eq(calls(), 1, "Redis commands after two more lookups")
end)

case("cached() never asks Redis: a tool it does not hold takes the slow path", function()
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    eq(routecache.cached("hello"), nil, "cached routes")
    eq(shim.redis.connects, 0, "connections")
end)

case("a write makes every entry read before it stale: cached() gives it up, routes() re-reads", function()
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    routecache.routes("hello")
    unit.store("hello", { { ".*", ECHO } })
    unit.changed("hello")
    shim.clock = shim.clock + 0.001
    eq(routecache.cached("hello"), nil, "cached routes after the write")
    eq(routecache.routes("hello")[2], ECHO, "backend after the write")
    eq(routecache.cached("hello")[2], ECHO, "cached backend after the re-read")
    eq(calls(), 2, "Redis commands")
end)

case("a change of one tool leaves every other tool's entry fresh", function()
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.store("echo", { { ".*", ECHO } })
    unit.watching()
    routecache.routes("hello")
    routecache.routes("echo")
    for i = 1, 50 do
        unit.changed("other" .. i)
    end
    unit.changed("hello")
    shim.clock = shim.clock + 0.001
    eq(routecache.cached("hello"), nil, "hello's cached routes")
    eq(routecache.cached("echo")[2], ECHO, "echo's cached backend")
    eq(calls(), 2, "Redis commands")
end)

case("a change published while Redis answered: the answer serves once, the next lookup re-reads", function()
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    shim.redis.during = function()
        unit.store("hello", { { ".*", ECHO } }) -- the answer may or may not hold this write
        unit.changed("hello")
        shim.clock = shim.clock + 0.001
        routecache.cached("other") -- another request of this worker applies the change meanwhile
    end
    routecache.routes("hello")
    shim.clock = shim.clock + 0.001
    eq(routecache.cached("hello"), nil, "cached routes")
    eq(routecache.routes("hello")[2], ECHO, "backend on the next lookup")
    eq(routecache.cached("hello")[2], ECHO, "cached backend after that")
end)

case("an entry another worker read before its tool changed is stale for this worker too", function()
    local first = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    first.routes("hello")
    unit.changed("hello")
    shim.clock = shim.clock + 0.001
    local second = another_worker()
    eq(second.cached("hello"), nil, "the other worker's cached routes")
    unit.store("hello", { { ".*", ECHO } })
    eq(second.routes("hello")[2], ECHO, "the other worker's backend")
end)

case("the invalidation log is read once per clock tick: a write shows from the next tick", function()
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    routecache.routes("hello")
    unit.changed("hello")
    check(routecache.cached("hello"), "same tick: still the log as read at this tick")
    shim.clock = shim.clock + 0.001
    eq(routecache.cached("hello"), nil, "cached routes one tick later")
end)

case("an entry is fresh for cache_ttl seconds, even when no write bumps the version", function()
    unit.configure({ cache_ttl = 60 })
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    routecache.routes("hello")
    shim.clock = 1000 + 59.999
    check(routecache.cached("hello"), "fresh just before cache_ttl")
    shim.clock = 1000 + 60
    eq(routecache.routes("hello")[2], HELLO, "backend at cache_ttl")
    eq(calls(), 2, "Redis commands (re-read at cache_ttl)")
end)

case("past cache_ttl the front still serves an unchanged entry while the refresh timer re-reads it", function()
    unit.configure({ cache_ttl = 60 })
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    routecache.routes("hello")
    unit.store("hello", { { ".*", ECHO } }) -- a writer the log missed: only cache_ttl catches it
    shim.clock = 1000 + 60
    eq(routecache.cached("hello")[2], HELLO, "old entry, still served by the front")
    eq(routecache.cached("hello")[2], HELLO, "asked again before the refresh")
    eq(calls(), 1, "Redis commands before the refresh (the front never asks)")
    routecache.refresh()
    eq(calls(), 2, "Redis commands: one re-read, however many requests queued it")
    eq(routecache.cached("hello")[2], ECHO, "after the refresh")
    routecache.refresh()
    eq(calls(), 2, "nothing queued: the next refresh reads nothing")
end)

case("a refresh round that still waits for Redis when the timer fires again reads each tool once", function()
    local routecache = read_into_cache({ { "hello", HELLO }, { "echo", ECHO } })
    routecache.start()
    shim.clock = 1000 + 60
    routecache.cached("hello")
    routecache.cached("echo")
    local before = calls()
    -- While the first round waits for its first answer, both tools' requests queue them again and
    -- the timer fires the next round (ngx.timer.every does not wait for the one before).
    shim.redis.during = function()
        routecache.cached("hello")
        routecache.cached("echo")
        shim.fire_timers()
    end
    shim.fire_timers()
    eq(calls() - before, 2, "Redis commands: one re-read per tool")
    shim.fire_timers()
    eq(calls() - before, 2, "the tools queued meanwhile are fresh by now: nothing read")
    check(routecache.cached("hello") and routecache.cached("echo"), "both fresh")
end)

case("tools that age together are re-read a hundred per round trip; a broken key spoils only its own", function()
    local tools = {}
    for i = 1, 250 do
        tools[i] = { "t" .. i, HELLO }
    end
    shim.redis.wrongtype["prefix:t7"] = true
    local routecache = read_into_cache(tools)
    for i = 1, 250 do
        unit.store("t" .. i, { { ".*", ECHO } }) -- a writer the log missed: only cache_ttl catches it
    end
    shim.clock = 1000 + 60
    for i = 1, 250 do
        routecache.cached("t" .. i)
    end
    local calls_before, connects_before = calls(), shim.redis.connects
    local logged_before = #shim.logged("HGETALL prefix:t7 answered WRONGTYPE")
    routecache.refresh()
    eq(shim.redis.connects - connects_before, 3, "round trips (connections taken from the pool)")
    eq(calls() - calls_before, 250, "Redis commands: one HGETALL per tool")
    eq(routecache.cached("t1")[2], ECHO, "first tool after the refresh")
    eq(routecache.cached("t250")[2], ECHO, "last tool after the refresh")
    eq(#routecache.cached("t7"), 0, "the tool whose key is not a hash: no routes")
    eq(#shim.logged("HGETALL prefix:t7 answered WRONGTYPE") - logged_before, 1, "log lines of the refresh")
end)

case("the front gives an old entry up past twice cache_ttl, or while Redis is marked down", function()
    local routecache = read_into_cache({ { "hello", HELLO }, { "echo", ECHO } })
    local redisconn = require "urlproxy.redisconn"
    shim.clock = 1000 + 120
    eq(routecache.cached("hello"), nil, "at twice cache_ttl")
    shim.clock = 1000 + 61
    redisconn.mark_down("test")
    eq(routecache.cached("echo"), nil, "old, and Redis marked down")
end)

case("before the watcher's first poll nothing is fresh: every lookup asks Redis", function()
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    eq(routecache.routes("hello")[2], HELLO, "backend")
    eq(routecache.cached("hello"), nil, "cached routes without a token")
    routecache.routes("hello")
    eq(calls(), 2, "Redis commands")
end)

case("Redis failing: a known tool is served stale, and Redis is left alone for the back-off", function()
    local routecache = require "urlproxy.routecache"
    local redisconn = require "urlproxy.redisconn"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    routecache.routes("hello")
    unit.changed("hello")
    shim.clock = shim.clock + 1
    shim.redis.down = true
    local routes, stale = routecache.routes("hello")
    eq({ routes[2], stale }, { HELLO, "stale" }, "answer while Redis is down")
    check(not redisconn.available(), "Redis is marked down")
    eq(#shim.logged("route store unavailable (backing off 0.25s)"), 1, "log lines")
    local connects = shim.redis.connects
    routes, stale = routecache.routes("hello")
    eq({ routes[2], stale, shim.redis.connects }, { HELLO, "stale", connects }, "answer during the back-off")
    shim.clock = shim.clock + 0.25
    check(redisconn.available(), "Redis is tried again after the back-off")
end)

case("a hung Redis (commands time out) is handled like a down one", function()
    local routecache = require "urlproxy.routecache"
    local redisconn = require "urlproxy.redisconn"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    routecache.routes("hello")
    shim.clock = shim.clock + 61
    shim.redis.failing = true
    local routes, stale = routecache.routes("hello")
    eq({ routes[2], stale }, { HELLO, "stale" }, "answer while Redis hangs")
    check(redisconn.marked_down(), "Redis is marked down")
end)

case("stale-if-error covers entries past cache_ttl too", function()
    unit.configure({ cache_ttl = 1 })
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    routecache.routes("hello")
    shim.redis.down = true
    shim.clock = shim.clock + 3600
    eq(routecache.cached("hello"), nil, "the front no longer routes it")
    local routes, stale = routecache.routes("hello")
    eq({ routes[2], stale }, { HELLO, "stale" }, "the slow path still does")
end)

case("a tool nobody cached while Redis is down: no routes and an error", function()
    local routecache = require "urlproxy.routecache"
    unit.watching()
    shim.redis.down = true
    local routes, err = routecache.routes("never-seen")
    eq(routes, nil, "routes")
    check(err and err:find("connection refused", 1, true), "error names the failure: " .. tostring(err))
    routes, err = routecache.routes("never-seen")
    eq({ routes, err }, { nil, "route store unavailable" }, "during the back-off")
end)

case("a key of the wrong type breaks its own tool only: no routes, Redis not marked down", function()
    local routecache = require "urlproxy.routecache"
    local redisconn = require "urlproxy.redisconn"
    unit.watching()
    shim.redis.wrongtype["prefix:broken"] = true
    eq(#routecache.routes("broken"), 0, "routes")
    check(redisconn.available(), "Redis still available")
    eq(#shim.logged("WRONGTYPE"), 1, "log lines")
end)

case("names the route store cannot hold never reach Redis", function()
    local routecache = require "urlproxy.routecache"
    unit.watching()
    for _, name in ipairs({ "Bad_Name", "favicon.ico", "-x", ("a"):rep(64) }) do
        eq(#routecache.routes(name), 0, "routes of " .. name)
        eq(#routecache.cached(name), 0, "cached routes of " .. name)
    end
    eq(shim.redis.connects, 0, "connections")
end)

case("routes are tried longest pattern first, then lexically; unusable backends are skipped", function()
    local routecache = require "urlproxy.routecache"
    unit.watching()
    unit.store("multi", {
        { ".*", HELLO },
        { "^/b/", ECHO },
        { "^/api/", ECHO },
        { "^/a/", HELLO },
        { "^/named/", "http://localhost:8000" },
    })
    local routes = routecache.routes("multi")
    eq({ unpack(routes) }, { "^/api/", ECHO, "^/a/", HELLO, "^/b/", ECHO, ".*", HELLO }, "match order")
    eq(#shim.logged("ignoring a stored route: backend http://localhost:8000"), 1, "log lines")
end)

case("another worker uses the shared dict's entry without asking Redis", function()
    local first = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    first.routes("hello")
    local second = another_worker()
    eq(second.cached("hello")[2], HELLO, "the other worker's cached backend")
    eq(calls(), 1, "Redis commands")
end)

case("a worker picks up a fresher entry another worker read into the shared dict", function()
    local first = require "urlproxy.routecache"
    unit.store("hello", { { ".*", HELLO } })
    unit.watching()
    first.routes("hello")
    unit.store("hello", { { ".*", ECHO } })
    unit.changed("hello")
    shim.clock = shim.clock + 0.001
    local second = another_worker()
    second.routes("hello")
    eq(first.cached("hello")[2], ECHO, "the first worker's cached backend")
    eq(calls(), 2, "Redis commands")
end)

case("the worker's table holds worker_cache_size tools; the rest come back from the shared dict", function()
    unit.configure({ worker_cache_size = 2 })
    local routecache = require "urlproxy.routecache"
    unit.watching()
    for _, tool in ipairs({ "one", "two", "three" }) do
        unit.store(tool, { { ".*", HELLO } })
        routecache.routes(tool)
    end
    for _, tool in ipairs({ "one", "two", "three" }) do
        eq(routecache.cached(tool)[2], HELLO, "cached backend of " .. tool)
    end
    eq(calls(), 3, "Redis commands")
end)

case("a tool with more routes than max_routes_per_tool is routed by the first ones, and logged", function()
    unit.configure({ max_routes_per_tool = 3 })
    local routecache = require "urlproxy.routecache"
    unit.watching()
    unit.store("many", {
        { ".*", HELLO },
        { "^/e/", ECHO },
        { "^/dd/", ECHO },
        { "^/ccc/", HELLO },
        { "^/b/", HELLO },
    })
    local routes = routecache.routes("many")
    eq({ unpack(routes) }, { "^/ccc/", HELLO, "^/dd/", ECHO, "^/b/", HELLO }, "routes (match order, cut)")
    local said = "tool many has 5 routes, more than max_routes_per_tool: routing by the first 3"
    local logged = shim.logged(said)
    eq(#logged, 1, "log lines")
end)

case("a regex PCRE cannot compile is logged and left out when the entry is built", function()
    local routecache = require "urlproxy.routecache"
    unit.watching()
    unit.store("badre", { { [[\u0041]], ECHO }, { ".*", HELLO } })
    local routes = routecache.routes("badre")
    eq({ unpack(routes) }, { ".*", HELLO }, "routes")
    local logged = shim.logged([[ignoring a stored route: route \u0041 of tool badre does not compile: ]])
    eq(#logged, 1, "log lines")
    shim.clock = shim.clock + 0.001
    eq(#routecache.cached("badre"), 2, "cached routes: the front routes the tool without the bad one")
    eq(calls(), 1, "Redis commands (the entry is built once, not per request)")
end)

case("control bytes a writer stored in a pattern do not reach the error log as such", function()
    local routecache = require "urlproxy.routecache"
    unit.watching()
    unit.store("badre", { { "(\n", ECHO } })
    routecache.routes("badre")
    eq(#shim.logged("route (? of tool badre does not compile"), 1, "logs")
end)

case("5,000 routes fit a cache entry: no unpack limit on the way to the shared dict", function()
    unit.configure({ max_routes_per_tool = 5000 })
    local routecache = require "urlproxy.routecache"
    unit.watching()
    local stored = {}
    for i = 1, 5000 do
        stored[i] = { ("^/r%04d$"):format(i), HELLO }
    end
    unit.store("big", stored)
    eq(#routecache.routes("big"), 10000, "entries in this worker")
    eq(#another_worker().cached("big"), 10000, "entries another worker decodes from the shared dict")
end)
