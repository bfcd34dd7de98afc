-- A small stand-in for what lua/urlproxy uses of OpenResty, so its rules run under plain lua5.1.
--
-- Only the calls the modules make, each with the behaviour they rely on: `ngx.re` through PCRE2
-- (lrexlib; nginx's Lua uses PCRE, whose syntax the route store's patterns share), shared dicts as
-- tables, a clock the test sets, timers the test fires, the request as plain tables (`ngx.var`,
-- `ngx.header`), and a scripted Redis in place of lua-resty-redis (`nginx.redis`). Everything a
-- module did is recorded (log lines, Redis commands, the peer, exit status) for the test to check.
local cjson = require "cjson.safe"
local rex = require "rex_pcre2"

local shim = {}

local compiled = {}

local function regex(pattern)
    local found = compiled[pattern]
    if not found then
        local ok, result = pcall(rex.new, pattern)
        if not ok then
            return nil, tostring(result)
        end
        found = result
        compiled[pattern] = found
    end
    return found
end

local function re_find(subject, pattern)
    local r, err = regex(pattern)
    if not r then
        return nil, nil, err
    end
    local from, to = r:find(subject)
    return from, to
end

-- ngx.re.match's shape: m[0] the whole match, m[1..n] the groups, false for a group that took no part.
local function re_match(subject, pattern)
    local r, err = regex(pattern)
    if not r then
        return nil, err
    end
    local found = { r:find(subject) }
    if not found[1] then
        return nil
    end
    local m = { [0] = subject:sub(found[1], found[2]) }
    for i = 3, #found do
        m[i - 2] = found[i]
    end
    return m
end

-- A shared dict: the operations the modules use, with ngx.shared.DICT's results. Expiry follows
-- the shim's clock; `full` makes safe_set fail as a full dict does.
local function new_dict()
    local values, expires = {}, {}
    local dict = { full = false }
    local function live(key)
        if expires[key] and shim.clock >= expires[key] then
            values[key], expires[key] = nil, nil
        end
        return values[key]
    end
    local function store(key, value, exptime)
        values[key] = value
        expires[key] = exptime and exptime > 0 and shim.clock + exptime or nil
        return true
    end
    function dict.get(_, key)
        return live(key)
    end
    function dict.set(_, key, value, exptime)
        return store(key, value, exptime)
    end
    function dict.safe_set(_, key, value, exptime)
        if dict.full then
            return false, "no memory"
        end
        return store(key, value, exptime)
    end
    function dict.add(_, key, value, exptime)
        if live(key) ~= nil then
            return false, "exists"
        end
        return store(key, value, exptime)
    end
    function dict.delete(_, key)
        values[key], expires[key] = nil, nil
    end
    function dict.incr(_, key, by, init)
        local value = live(key)
        if value == nil then
            if init == nil then
                return nil, "not found"
            end
            value = init
        end
        values[key] = value + by
        return values[key]
    end
    dict.values = values
    return dict
end

-- The scripted Redis: `hashes` (key -> ordered {field, value} pairs), `strings` and `wrongtype`
-- hold the data; `down` refuses connections; `failing` makes every command time out (a hung
-- server); `connects` counts connections and `calls` lists the commands sent.
local function new_redis_state()
    return {
        hashes = {},
        strings = {},
        wrongtype = {},
        down = false,
        failing = false,
        calls = {},
        connects = 0,
    }
end

local function fake_redis_module()
    local client = {}
    client.__index = client

    local function command(name, ...)
        local state = shim.redis
        state.calls[#state.calls + 1] = table.concat({ name, ... }, " ")
        if state.failing then
            return nil, "timeout"
        end
        return true
    end

    function client.set_timeout() end

    function client.connect()
        shim.redis.connects = shim.redis.connects + 1
        if shim.redis.down then
            return nil, "connection refused"
        end
        return 1
    end

    function client.get_reused_times()
        return 0
    end

    function client.select(_, db)
        local ok, err = command("SELECT", db)
        if not ok then
            return nil, err
        end
        return "OK"
    end

    function client.hgetall(_, key)
        local ok, err = command("HGETALL", key)
        if not ok then
            return nil, err
        end
        if shim.redis.wrongtype[key] then
            return false, "WRONGTYPE Operation against a key holding the wrong kind of value"
        end
        local flat = {}
        for _, pair in ipairs(shim.redis.hashes[key] or {}) do
            flat[#flat + 1] = pair[1]
            flat[#flat + 1] = pair[2]
        end
        return flat
    end

    function client.get(_, key)
        local ok, err = command("GET", key)
        if not ok then
            return nil, err
        end
        local value = shim.redis.strings[key]
        if value == nil then
            return ngx.null
        end
        return value
    end

    -- One batch with every matching hash key (the MATCH pattern is "<prefix>*").
    function client.scan(_, cursor, _, pattern, _, count)
        local ok, err = command("SCAN", cursor, pattern, count)
        if not ok then
            return nil, err
        end
        local prefix = pattern:sub(1, -2)
        local keys = {}
        for key in pairs(shim.redis.hashes) do
            if key:sub(1, #prefix) == prefix then
                keys[#keys + 1] = key
            end
        end
        table.sort(keys)
        return { "0", keys }
    end

    function client.set_keepalive()
        return 1
    end

    function client.close()
        return 1
    end

    return {
        new = function()
            return setmetatable({}, client)
        end,
    }
end

-- A fresh `ngx` global and fresh recordings: every test case starts from here.
function shim.reset()
    shim.clock = 1000
    shim.logs = {}
    shim.timers = {}
    shim.peer = nil
    shim.exited = nil
    shim.exec = nil
    shim.output = {}
    shim.redis = new_redis_state()
    local dicts = setmetatable({}, {
        __index = function(dicts, name)
            local dict = new_dict()
            rawset(dicts, name, dict)
            return dict
        end,
    })
    shim.dicts = dicts
    ngx = {
        null = cjson.null,
        ERR = 4,
        WARN = 5,
        NOTICE = 6,
        INFO = 7,
        now = function()
            return shim.clock
        end,
        log = function(level, ...)
            shim.logs[#shim.logs + 1] = { level = level, text = table.concat({ ... }) }
        end,
        re = { find = re_find, match = re_match },
        shared = dicts,
        var = {},
        header = {},
        status = 200,
        print = function(text)
            shim.output[#shim.output + 1] = text
        end,
        exit = function(status)
            shim.exited = status
        end,
        exec = function(location)
            shim.exec = location
        end,
        timer = {
            at = function(delay, callback)
                shim.timers[#shim.timers + 1] = { delay = delay, callback = callback }
                return true
            end,
        },
        worker = {
            id = function()
                return 0
            end,
            pid = function()
                return 4242
            end,
        },
    }
    package.loaded["nginx.redis"] = fake_redis_module()
    package.loaded["ngx.balancer"] = {
        set_current_peer = function(host, port)
            shim.peer = { host = host, port = port }
            return true
        end,
    }
end

-- Fire the timers armed so far (the ones they arm in turn wait for the next call); returns how many.
function shim.fire_timers()
    local due = shim.timers
    shim.timers = {}
    for _, timer in ipairs(due) do
        timer.callback(false)
    end
    return #due
end

-- The log lines at `level` (default: any) whose text contains `part`.
function shim.logged(part, level)
    local found = {}
    for _, line in ipairs(shim.logs) do
        if (not level or line.level == level) and line.text:find(part, 1, true) then
            found[#found + 1] = line.text
        end
    end
    return found
end

return shim
