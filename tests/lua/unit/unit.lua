-- The unit tests' runner and checks: each case runs on a fresh `ngx` shim with freshly loaded
-- urlproxy modules, so no case sees another's cache, clock or Redis.
--
-- A test file registers cases with `unit.case(name, fn)`; runner.lua prints one TAP line per case
-- ("ok N - name" or "not ok N - name: why") and exits 1 if any failed. Lint them with
-- `luacheck --config tests/lua/unit/.luacheckrc tests/lua/unit`.
local shim = require "ngx_shim"

local unit = { shim = shim, root = "." }

local cases = {}

function unit.case(name, fn)
    cases[#cases + 1] = { name = name, fn = fn }
end

local function show(value)
    if type(value) == "string" then
        return ("%q"):format(value)
    end
    if type(value) ~= "table" then
        return tostring(value)
    end
    local parts = {}
    for key, item in pairs(value) do
        parts[#parts + 1] = tostring(key) .. "=" .. show(item)
    end
    table.sort(parts)
    return "{" .. table.concat(parts, ", ") .. "}"
end
unit.show = show

local function same(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then
        return a == b
    end
    for key, value in pairs(a) do
        if not same(value, b[key]) then
            return false
        end
    end
    for key in pairs(b) do
        if a[key] == nil then
            return false
        end
    end
    return true
end

-- Fail unless `actual` equals `expected` (tables compared by content); `what` names the value.
function unit.eq(actual, expected, what)
    if not same(actual, expected) then
        error(("%s: expected %s, got %s"):format(what or "value", show(expected), show(actual)), 2)
    end
end

function unit.check(condition, what)
    if not condition then
        error(what, 2)
    end
end

-- Load the settings the modules read: the defaults, a proxy's own values, and `overrides`.
function unit.configure(overrides)
    local settings = require "urlproxy.settings"
    local data = {
        redis_host = "127.0.0.1",
        redis_port = 6379,
        redis_db = 0,
        slow_socket = "/run/test/slow.sock",
        proxy_addresses = {},
        proxy_ports = {},
        host_domains = {},
    }
    for key, value in pairs(overrides or {}) do
        data[key] = value
    end
    local checked, err = settings.checked(data)
    assert(checked, err)
    settings.current = checked
    return checked
end

-- What the watcher publishes once it subscribed: every tool is stale, changes are seen from now on.
function unit.watching()
    require("urlproxy.changes").publish_all("test")
end

-- What the watcher publishes when Redis says a key of `tool` changed.
function unit.changed(tool)
    require("urlproxy.changes").publish(tool)
end

-- Store `tool`'s routes in the scripted Redis: `routes` is a list of {pattern, backend}.
function unit.store(tool, routes)
    local schema = require "urlproxy.schema"
    shim.redis.hashes[schema.PREFIX .. tool] = routes
end

-- Store the block list of `kind` in the scripted Redis: `entries` is a list of entries.
function unit.block(kind, entries)
    local schema = require "urlproxy.schema"
    local pairs_ = {}
    for i, entry in ipairs(entries) do
        pairs_[i] = { entry, "{}" }
    end
    shim.redis.hashes[schema.BLOCK_PREFIX .. kind] = pairs_
end

-- Which Redis commands the modules sent since the case began.
function unit.redis_calls()
    return #shim.redis.calls
end

local function fresh_modules()
    for name in pairs(package.loaded) do
        if name == "urlproxy" or name:sub(1, 9) == "urlproxy." then
            package.loaded[name] = nil
        end
    end
end

-- Run every case of `file`; returns the number of failures.
function unit.run(file)
    cases = {}
    dofile(file)
    print("1.." .. #cases)
    local failed = 0
    for i, case in ipairs(cases) do
        shim.reset()
        fresh_modules()
        unit.configure()
        local ok, err = xpcall(case.fn, debug.traceback)
        if ok then
            print(("ok %d - %s"):format(i, case.name))
        else
            failed = failed + 1
            print(("not ok %d - %s: %s"):format(i, case.name, (tostring(err):gsub("\n", "\n# "))))
        end
    end
    return failed
end

return unit
