-- settings.lua: what nginx refuses to start with, and the defaults of what the file leaves out.
local cjson = require "cjson.safe"
local unit = require "unit"
local case, eq, check = unit.case, unit.eq, unit.check

local function proxy(extra)
    local data = { redis_host = "127.0.0.1", redis_port = 6379, redis_db = 0, slow_socket = "/run/s.sock" }
    data.proxy_addresses, data.proxy_ports, data.host_domains = {}, {}, {}
    for key, value in pairs(extra or {}) do
        data[key] = value
    end
    return data
end

local function problem(data)
    local ok, err = require("urlproxy.settings").checked(data)
    check(not ok, "settings accepted: " .. unit.show(data))
    return err
end

case("what the file leaves out or sets to null takes the default", function()
    local settings = require "urlproxy.settings"
    local data = assert(settings.checked(proxy({ cache_ttl = cjson.null, redis_pool_size = 7 })))
    eq(data.cache_ttl, 60, "cache_ttl")
    eq(data.redis_pool_size, 7, "redis_pool_size")
    for key, default in pairs(settings.DEFAULTS) do
        if key ~= "redis_pool_size" then
            eq(data[key], default, key)
        end
    end
end)

case("each per-proxy value is required", function()
    for key, kind in pairs(require("urlproxy.settings").REQUIRED) do
        local data = proxy()
        data[key] = nil
        eq(problem(data), key .. " must be a " .. kind .. ", not nil", "complaint without " .. key)
    end
    eq(problem(proxy({ slow_socket = "" })), "slow_socket must not be empty", "complaint")
end)

case("a knob of the wrong type, zero or negative is refused", function()
    eq(problem(proxy({ cache_ttl = "60" })), "cache_ttl must be a number, not string", "string for a number")
    eq(problem(proxy({ watcher_ping_ms = 0 })), "watcher_ping_ms must be positive", "zero")
    eq(problem(proxy({ redis_backoff_ms = -1 })), "redis_backoff_ms must be positive", "negative")
    eq(problem(proxy({ maintenance = "yes" })), "maintenance must be a boolean, not string", "flag")
    eq(problem(proxy({ redis_db = -1 })), "redis_db must be 0 or more", "negative db")
    eq(problem(proxy({ routing = "sideways" })), 'routing must be "path" or "host"', "routing")
    eq(problem(proxy({ client_ip = "shown" })), 'client_ip must be "hidden" or "forwarded"', "client_ip")
    local tools = proxy({ client_ip_forwarded_tools = { "a", 5 } })
    eq(problem(tools), "client_ip_forwarded_tools must list tool names", "client_ip_forwarded_tools")
    eq(problem("not a table"), "not a JSON object", "not an object")
end)

case("load() stops nginx with the file's name when it is unreadable or wrong", function()
    local settings = require "urlproxy.settings"
    local ok, err = pcall(settings.load, "/nonexistent/urlproxy.json")
    check(not ok and err:find("cannot read settings /nonexistent/urlproxy.json", 1, true), tostring(err))
    local path = os.tmpname()
    local file = assert(io.open(path, "w"))
    file:write(cjson.encode(proxy({ cache_ttl = 0 })))
    file:close()
    ok, err = pcall(settings.load, path)
    os.remove(path)
    check(not ok and err:find("settings " .. path .. ": cache_ttl must be positive", 1, true), tostring(err))
end)
