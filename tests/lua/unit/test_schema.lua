-- The Lua side of tests/fixtures/schema.json: every value Lua mirrors from Python must equal it.
-- (tests/lua/test_schema.py checks the Python side against the same file.)
local cjson = require "cjson.safe"
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

local function pinned()
    local file = assert(io.open(unit.root .. "/tests/fixtures/schema.json", "r"))
    local data = assert(cjson.decode(file:read("*a")))
    file:close()
    return data
end

-- The fixture's UPPER_CASE entries: the Redis key names.
local function redis_names(data)
    local names = {}
    for name, value in pairs(data) do
        if name:match("^[A-Z_]+$") then
            names[name] = value
        end
    end
    return names
end

case("the Redis key names are the pinned ones, and every name schema.lua holds is pinned", function()
    local schema = require "urlproxy.schema"
    local names = redis_names(pinned())
    for name, value in pairs(names) do
        eq(schema[name], value, "schema.lua " .. name)
    end
    for name in pairs(schema) do
        local pinned_name = names[name] or name == "TOOL_NAME" or name == "BLOCK_LIMITS"
        check(pinned_name, "schema.lua " .. name .. " is not in tests/fixtures/schema.json")
    end
end)

case("the block lists' limits are the pinned ones", function()
    eq(require("urlproxy.schema").BLOCK_LIMITS, pinned().block_limits, "schema.lua BLOCK_LIMITS")
end)

case("the tool-name rule: the pinned pattern, and only valid names reach Redis", function()
    local rule = pinned().tool_name
    eq(require("urlproxy.schema").TOOL_NAME, rule.pattern, "schema.lua TOOL_NAME")
    local routecache = require "urlproxy.routecache"
    for _, name in ipairs(rule.valid) do
        local before = #shim.redis.calls
        routecache.routes(name)
        eq(#shim.redis.calls - before, 1, "Redis commands for the valid name " .. name)
    end
    for _, name in ipairs(rule.invalid) do
        local before = #shim.redis.calls
        eq(#routecache.routes(name), 0, "routes of the invalid name " .. ("%q"):format(name))
        eq(#shim.redis.calls - before, 0, "Redis commands for the invalid name " .. ("%q"):format(name))
    end
end)

case("the backend grammar: every pinned backend parses to its address and port", function()
    local backend = require "urlproxy.backend"
    for _, pin in ipairs(pinned().backend.accepted) do
        local peer, err = backend.parse(pin.url)
        check(peer, pin.url .. " refused: " .. tostring(err))
        local expected = { scheme = pin.scheme, port = pin.port }
        if pin.kind == "name" then
            expected.name = pin.address
        else
            expected.host = pin.address:find(":", 1, true) and "[" .. pin.address .. "]" or pin.address
        end
        eq(peer, expected, "peer of " .. pin.url)
    end
end)

case("the backend grammar: every pinned refusal is refused", function()
    local backend = require "urlproxy.backend"
    for _, url in ipairs(pinned().backend.refused) do
        local peer = backend.parse(url)
        check(not peer, ("%q accepted as %s"):format(url, unit.show(peer)))
    end
end)

case("the route rule: a stored route PCRE compiles is kept, one it cannot is left out", function()
    local rule = pinned().route
    local routecache = require "urlproxy.routecache"
    unit.configure({ max_routes_per_tool = 100 })
    unit.watching()
    local kept, tools = {}, 0
    for _, list in ipairs({ rule.compiles, rule.version_dependent, rule.does_not_compile }) do
        for _, pattern in ipairs(list) do
            tools = tools + 1
            unit.store("route-" .. tools, { { pattern, "http://10.0.0.1:8000" } })
            kept[pattern] = #routecache.routes("route-" .. tools) == 2
        end
    end
    for _, pattern in ipairs(rule.compiles) do
        check(kept[pattern], "the compiling route " .. pattern .. " was left out")
    end
    for _, pattern in ipairs(rule.version_dependent) do
        check(kept[pattern], "the route " .. pattern .. " (nginx reads it as its PCRE does) was left out")
    end
    for _, pattern in ipairs(rule.does_not_compile) do
        check(not kept[pattern], "the route " .. pattern .. " (does not compile) was kept")
    end
end)

case("the settings' defaults are the pinned ones, and every knob Lua reads is pinned", function()
    local settings = require "urlproxy.settings"
    local pin = pinned().settings
    eq(settings.DEFAULTS, pin.defaults, "settings.lua DEFAULTS")
    local required = {}
    for key in pairs(settings.REQUIRED) do
        required[#required + 1] = key
    end
    table.sort(required)
    local expected = { unpack(pin.per_proxy) }
    table.sort(expected)
    eq(required, expected, "settings.lua REQUIRED")
end)

case("the shared dicts are the pinned ones", function()
    local shdict = require "urlproxy.shdict"
    local names = { shdict.ROUTES_DICT, shdict.STATE_DICT, shdict.METRICS_DICT, shdict.DNS_DICT }
    table.sort(names)
    eq(names, pinned().shared_dicts, "shdict.lua dict names")
end)
