-- routelist.lua: /list from a SCAN walk, kept until a route changes, stale while Redis fails.
local cjson = require "cjson.safe"
local unit = require "unit"
local case, eq, shim = unit.case, unit.eq, unit.shim

local function list()
    shim.output, ngx.status = {}, 200
    ngx.header = {}
    require("urlproxy.routelist").serve()
    return ngx.status, cjson.decode(table.concat(shim.output)), ngx.header["X-Toolforgectl-Stale"]
end

case("/list names every tool with a route, from one SCAN walk with list_scan_count", function()
    unit.configure({ list_scan_count = 50 })
    unit.watching()
    unit.store("hello", { { ".*", "http://10.0.0.1:80" } })
    unit.store("echo", { { ".*", "http://10.0.0.2:80" } })
    local status, body, stale = list()
    local active = { status = "active" }
    eq({ status, body, stale }, { 200, { hello = active, echo = active } }, "answer")
    eq(shim.redis.calls, { "SCAN 0 prefix:* 50" }, "commands")
end)

case("the answer is kept until a route changes", function()
    unit.watching()
    unit.store("hello", { { ".*", "http://10.0.0.1:80" } })
    list()
    unit.store("new", { { ".*", "http://10.0.0.1:80" } })
    local _, body = list()
    eq(body.new, nil, "a tool written, its change not yet seen")
    eq(#shim.redis.calls, 1, "Redis commands")
    unit.changed("new")
    shim.clock = shim.clock + 0.001
    _, body = list()
    eq(body.new, { status = "active" }, "the new tool once its change is seen")
end)

case("Redis down: the last answer, marked stale; nothing known: 503", function()
    unit.watching()
    shim.redis.down = true
    local status, body = list()
    eq({ status, body }, { 503, { error = "route store unavailable" } }, "answer with nothing known")
    shim.redis.down = false
    shim.clock = shim.clock + 1
    unit.store("hello", { { ".*", "http://10.0.0.1:80" } })
    list()
    unit.changed("hello")
    shim.redis.down = true
    shim.clock = shim.clock + 1
    local stale
    status, body, stale = list()
    eq({ status, body, stale }, { 200, { hello = { status = "active" } }, "true" }, "answer, Redis down")
end)
