-- watcher.lua and /route-version: how a route store write reaches every worker's cache.
local cjson = require "cjson.safe"
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

local VERSION_KEY = "toolforgectl:routes:version"

local function token()
    local shdict = require "urlproxy.shdict"
    return shdict.state():get(shdict.TOKEN)
end

-- Start the watcher and let it poll once.
local function started()
    local watcher = require "urlproxy.watcher"
    watcher.start()
    eq(shim.fire_timers(), 1, "timers fired")
    return watcher
end

case("the watcher publishes <version>/<epoch> and polls again after invalidation_poll_ms", function()
    unit.configure({ invalidation_poll_ms = 40 })
    shim.redis.strings[VERSION_KEY] = "7"
    started()
    eq(token(), "7/0", "token")
    eq(#shim.timers, 1, "timers armed")
    eq(shim.timers[1].delay, 0.04, "next poll in seconds")
    shim.redis.strings[VERSION_KEY] = "8"
    shim.fire_timers()
    eq(token(), "8/0", "token after a write")
end)

case("no version key yet (an empty route store) counts as version 0", function()
    started()
    eq(token(), "0/0", "token")
end)

case("only worker 0 polls; the others read what it publishes", function()
    ngx.worker.id = function()
        return 1
    end
    require("urlproxy.watcher").start()
    eq(#shim.timers, 0, "timers armed")
end)

case("Redis failing: the token stays, Redis is marked down, polling goes on", function()
    shim.redis.strings[VERSION_KEY] = "7"
    started()
    shim.redis.down = true
    shim.fire_timers()
    eq(token(), "7/0", "token")
    check(require("urlproxy.redisconn").marked_down(), "Redis is marked down")
    eq(#shim.timers, 1, "timers armed")
end)

case("Redis answering again bumps the epoch, so every entry cached before is re-read", function()
    local routecache = require "urlproxy.routecache"
    shim.redis.strings[VERSION_KEY] = "7"
    unit.store("hello", { { ".*", "http://10.0.0.1:8000" } })
    started()
    routecache.routes("hello")
    shim.redis.down = true
    shim.clock = shim.clock + 0.1
    shim.fire_timers()
    check(routecache.cached("hello"), "fresh while Redis is down (same version)")
    shim.redis.down = false
    shim.clock = shim.clock + 0.1
    shim.fire_timers()
    eq(token(), "7/1", "token")
    check(not require("urlproxy.redisconn").marked_down(), "Redis no longer marked down")
    eq(#shim.logged("route store reachable again", ngx.NOTICE), 1, "notice lines")
    shim.clock = shim.clock + 0.001
    eq(routecache.cached("hello"), nil, "cached routes after the outage")
end)

case("a write is live for the front after one poll and one clock tick", function()
    local routecache = require "urlproxy.routecache"
    shim.redis.strings[VERSION_KEY] = "1"
    unit.store("hello", { { ".*", "http://10.0.0.1:8000" } })
    started()
    routecache.routes("hello")
    shim.redis.strings[VERSION_KEY] = "2"
    shim.clock = shim.clock + 0.025
    check(routecache.cached("hello"), "fresh until the watcher polls")
    shim.fire_timers()
    shim.clock = shim.clock + 0.001
    eq(routecache.cached("hello"), nil, "cached routes after the poll")
end)

case("a poll that raises is logged, and the watcher keeps polling", function()
    shim.redis.strings[VERSION_KEY] = {} -- not a string: building the token raises
    started()
    eq(#shim.logged("version watcher failed"), 1, "log lines")
    eq(#shim.timers, 1, "timers armed")
end)

case("/route-version answers the version and epoch this worker routes by", function()
    shim.redis.strings[VERSION_KEY] = "12"
    started()
    require("urlproxy.routeversion").serve()
    local answer = cjson.decode(table.concat(shim.output))
    eq(answer, { version = 12, epoch = 0, token = "12/0", worker = 0 }, "answer")
    eq(ngx.header["Content-Type"], "application/json", "content type")
end)

case("/route-version answers nulls before the watcher first reached Redis", function()
    require("urlproxy.routeversion").serve()
    local answer = cjson.decode(table.concat(shim.output))
    eq({ answer.version, answer.token }, { cjson.null, cjson.null }, "version and token")
end)
