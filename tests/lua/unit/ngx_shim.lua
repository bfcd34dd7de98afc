-- A small stand-in for what lua/urlproxy uses of OpenResty, so its rules run under plain lua5.1.
--
-- Only the calls the modules make, each with the behaviour they rely on: `ngx.re` through PCRE2
-- (lrexlib; nginx's Lua uses PCRE, whose syntax the route store's patterns share), shared dicts as
-- tables, a clock the test sets, timers the test fires, the request as plain tables (`ngx.var`,
-- `ngx.header`), and a scripted Redis in place of lua-resty-redis (`nginx.redis`). Everything a
-- module did is recorded (log lines, Redis commands, the peer, exit status, a redirect) for the
-- test to check.
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

-- `shim.match_errors[pattern]`: what matching that pattern against a non-empty subject fails with,
-- as PCRE does past lua_regex_match_limit ("pcre_exec() failed: -8"); compiling it still works.
local function re_find(subject, pattern)
    local r, err = regex(pattern)
    if not r then
        return nil, nil, err
    end
    if subject ~= "" and shim.match_errors[pattern] then
        return nil, nil, shim.match_errors[pattern]
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
    function dict.get_keys()
        local keys = {}
        for key in pairs(values) do
            keys[#keys + 1] = key
        end
        table.sort(keys)
        return keys
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
-- server); `connects` counts connections and `calls` lists the commands sent; `during`, a function,
-- runs once while the next command is answered.
-- For the watcher: `inbox` is what a subscribed connection reads next, in order (a reply table,
-- or "timeout" / "closed"); a PING's answer joins its end unless Redis is `failing`. A subscribed
-- connection's reads stop the worker (ngx.worker.exiting()) after `reads_left` reads; a function
-- in the inbox is a step of the test run between two reads.
-- `tracking` records the CLIENT TRACKING arguments, `no_tracking` refuses the command (Redis 5),
-- `tracking_gone` makes CLIENT LIST say the tracking connection was closed.
local function new_redis_state()
    return {
        hashes = {},
        strings = {},
        wrongtype = {},
        down = false,
        failing = false,
        calls = {},
        connects = 0,
        inbox = {},
        reads_left = 50,
        tracking = nil,
        no_tracking = false,
        tracking_gone = false,
        during = nil,
    }
end

local function fake_redis_module()
    local client = {}
    client.__index = client

    local function command(name, ...)
        local state = shim.redis
        state.calls[#state.calls + 1] = table.concat({ name, ... }, " ")
        local during = state.during
        if during then -- once: what happens elsewhere while Redis answers this command
            state.during = nil
            during()
        end
        if state.failing then
            return nil, "timeout"
        end
        return true
    end

    function client.set_timeout() end

    function client.connect(self)
        shim.redis.connects = shim.redis.connects + 1
        if shim.redis.down then
            return nil, "connection refused"
        end
        self.id = shim.redis.connects
        return 1
    end

    function client.client(self, sub, ...)
        local ok, err = command("CLIENT", sub, ...)
        if not ok then
            return nil, err
        end
        local state = shim.redis
        if sub == "ID" then
            return self.id
        elseif sub == "TRACKING" then
            if state.no_tracking then
                return false, "ERR Unknown subcommand or wrong number of arguments for 'TRACKING'"
            end
            state.tracking = { ... }
            state.tracking.client = self.id
            return "OK"
        elseif sub == "LIST" then
            if state.tracking_gone then
                return ""
            end
            return "id=" .. select(2, ...) .. " addr=127.0.0.1:1 flags=t db=0 sub=0 cmd=client|tracking\n"
        end
        return false, "ERR unknown CLIENT subcommand in the shim"
    end

    function client.subscribe(self, channel)
        local ok, err = command("SUBSCRIBE", channel)
        if not ok then
            return nil, err
        end
        self.subscribed = true
        return { "subscribe", channel, 1 }
    end

    function client.read_reply()
        local state = shim.redis
        state.reads_left = state.reads_left - 1
        if state.reads_left < 0 then
            shim.exiting = true
            return nil, "timeout"
        end
        local item = table.remove(state.inbox, 1)
        while type(item) == "function" do -- a step of the test's script, between two reads
            item()
            item = table.remove(state.inbox, 1)
        end
        if item == nil or item == "timeout" then
            return nil, "timeout"
        elseif item == "closed" then
            return nil, "closed"
        end
        return item
    end

    -- On a subscribed connection: sent, and the next message read (the answer joins the inbox).
    function client.ping(_, payload)
        local state = shim.redis
        state.calls[#state.calls + 1] = "PING " .. tostring(payload)
        if not state.failing then
            state.inbox[#state.inbox + 1] = { "pong", payload or "" }
        end
        return client.read_reply()
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

    function client.hgetall(self, key)
        if self.queued then
            self.queued[#self.queued + 1] = { "hgetall", key }
            return "OK"
        end
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

    function client.hkeys(self, key)
        if self.queued then
            self.queued[#self.queued + 1] = { "hkeys", key }
            return "OK"
        end
        local ok, err = command("HKEYS", key)
        if not ok then
            return nil, err
        end
        if shim.redis.wrongtype[key] then
            return false, "WRONGTYPE Operation against a key holding the wrong kind of value"
        end
        local fields = {}
        for _, pair in ipairs(shim.redis.hashes[key] or {}) do
            fields[#fields + 1] = pair[1]
        end
        return fields
    end

    -- lua-resty-redis's pipelines: commands queue until the commit, which answers them all (an
    -- error reply as {false, err}), or fails as a whole when the connection does.
    function client.init_pipeline(self)
        self.queued = {}
    end

    function client.commit_pipeline(self)
        local queued = self.queued
        self.queued = nil
        local replies = {}
        for i, call in ipairs(queued) do
            local reply, err = client[call[1]](self, call[2])
            if reply == nil then
                return nil, err
            end
            replies[i] = reply == false and { false, err } or reply
        end
        return replies
    end

    function client.hlen(self, key)
        if self.queued then
            self.queued[#self.queued + 1] = { "hlen", key }
            return "OK"
        end
        local ok, err = command("HLEN", key)
        if not ok then
            return nil, err
        end
        if shim.redis.wrongtype[key] then
            return false, "WRONGTYPE Operation against a key holding the wrong kind of value"
        end
        return #(shim.redis.hashes[key] or {})
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

-- The scripted DNS (in place of lua-resty-dns, `nginx.dns.resolver`): `records` maps a name to
-- its answers ({type = 1 (A) or 28 (AAAA), address, ttl} each) or to "servfail"; a name it lacks
-- does not exist (NXDOMAIN); `down` answers nothing. `queries` lists "<name> <type>" asked, and
-- `servers` the nameservers the last resolver was made with.
local function new_dns_state()
    return { records = {}, down = false, queries = {}, servers = nil }
end

local function fake_dns_module()
    local resolver = { TYPE_A = 1, TYPE_AAAA = 28 }
    resolver.__index = resolver

    function resolver.new(_, opts)
        shim.dns.servers = opts.nameservers
        return setmetatable({}, resolver)
    end

    function resolver.query(_, name, opts)
        local state = shim.dns
        state.queries[#state.queries + 1] = name .. " " .. opts.qtype
        if state.down then
            return nil, "failed to receive reply from UDP server 127.0.0.1:53: connection refused"
        end
        local records = state.records[name]
        if records == nil then
            return { errcode = 3, errstr = "name error" }
        end
        if records == "servfail" then
            return { errcode = 2, errstr = "server failure" }
        end
        local answers = {}
        for _, record in ipairs(records) do
            if record.type == opts.qtype then
                answers[#answers + 1] =
                    { name = name, type = record.type, address = record.address, ttl = record.ttl }
            end
        end
        return answers
    end

    return resolver
end

-- rawrequest.lua reads nginx's own memory through LuaJIT's FFI; here the request is `ngx.var`
-- (its `request_uri`) and `shim.request` numbers the request in flight. A loader, not a loaded
-- module: each test case loads the urlproxy modules afresh.
package.preload["urlproxy.rawrequest"] = function()
    return {
        tool_segment = function()
            local uri = ngx.var.request_uri
            return uri and uri:match("^/([^/?]*)") or ""
        end,
        id = function()
            return shim.request
        end,
    }
end

-- A fresh `ngx` global and fresh recordings: every test case starts from here.
function shim.reset()
    shim.clock = 1000
    shim.request = 1
    shim.logs = {}
    shim.timers = {}
    shim.peer = nil
    shim.exited = nil
    shim.exec = nil
    shim.redirected = nil
    shim.recreated = nil
    shim.output = {}
    shim.sleeps = {}
    shim.max_sleeps = 10 -- then the worker exits: a watcher that cannot reach Redis stops there
    shim.on_sleep = nil
    shim.exiting = false
    shim.redis = new_redis_state()
    shim.match_errors = {}
    shim.dns = new_dns_state()
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
        redirect = function(url, status)
            shim.redirected = { url = url, status = status }
        end,
        timer = {
            at = function(delay, callback)
                shim.timers[#shim.timers + 1] = { delay = delay, callback = callback }
                return true
            end,
            every = function(interval, callback)
                shim.timers[#shim.timers + 1] = { delay = interval, callback = callback, every = true }
                return true
            end,
        },
        sleep = function(seconds)
            shim.sleeps[#shim.sleeps + 1] = seconds
            shim.clock = shim.clock + seconds
            if shim.on_sleep then
                shim.on_sleep()
            end
            if #shim.sleeps >= shim.max_sleeps then
                shim.exiting = true
            end
        end,
        -- Light threads run to completion at once (the modules only spawn, then wait for all).
        thread = {
            spawn = function(fn, ...)
                return { pcall(fn, ...) }
            end,
            wait = function(thread)
                return unpack(thread)
            end,
        },
        worker = {
            exiting = function()
                return shim.exiting
            end,
            id = function()
                return 0
            end,
            pid = function()
                return 4242
            end,
        },
    }
    package.loaded["nginx.redis"] = fake_redis_module()
    package.loaded["nginx.dns.resolver"] = fake_dns_module()
    package.loaded["ngx.balancer"] = {
        set_current_peer = function(host, port)
            shim.peer = { host = host, port = port }
            return true
        end,
        -- Records the client address the rebuilt request carries ($urlproxy_client).
        recreate_request = function()
            shim.recreated = { client = ngx.var.urlproxy_client }
            return true
        end,
    }
end

-- Fire the timers armed so far (the ones they arm in turn wait for the next call; recurring ones
-- stay armed); returns how many. `premature`: as nginx fires them when the worker exits.
function shim.fire_timers(premature)
    local due = shim.timers
    shim.timers = {}
    for _, timer in ipairs(due) do
        if timer.every then
            shim.timers[#shim.timers + 1] = timer
        end
        timer.callback(premature or false)
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
