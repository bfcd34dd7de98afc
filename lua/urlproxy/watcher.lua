-- Learns from Redis itself which tools' routes changed, whoever wrote them, and publishes each
-- change to every worker through the invalidation log (changes.lua).
--
-- One worker (worker 0) keeps two connections to the proxy's Redis: `sub`, subscribed to
-- __redis__:invalidate, and `tracking`, on which CLIENT TRACKING ON REDIRECT <sub> BCAST asks for
-- the name of every changed key under the route store's prefixes (client-side caching in broadcast
-- mode, Redis 6 or later). Redis then names each changed `prefix:<tool>` and `redirect:<tool>`
-- whoever changed it: redis-cli, an original-era proxylistener or kube2proxy, our route store, a
-- write that arrived by replication, an expiry; and sends nil when the whole data set went
-- (FLUSHALL, a replica's full resync), which makes every tool stale. No server setting is needed.
-- The block lists (`toolforgectl:block:<kind>`) are watched the same way and published under the
-- name changes.BLOCKS, which no tool can have (blocks.lua caches them under it).
--
-- Silence is normal: a read that times out after `watcher_ping_ms` just sends a PING. Redis counts
-- as down only when a connection is refused or closed, or when a PING stays unanswered through two
-- read timeouts in a row: nginx polls for events before the second one can run out, so a worker that
-- was busy past the timeout (a slow regex, a long GC) finds the answer waiting instead of declaring
-- Redis down. After every (re)subscribe every tool is stale, since changes may have been missed;
-- reconnecting backs off like requests do, and errors go through the rate-limited error log.
--
-- Each PING carries the route store version (toolforgectl:routes:version) read just before it on a
-- pooled connection. Redis answers it after every invalidation it sent before, so when the answer
-- arrives every write up to that version has been applied: that version is what /route-version
-- shows. A change of the version key itself sends such a PING at once.
local redis = require "nginx.redis"
local changes = require "urlproxy.changes"
local redisconn = require "urlproxy.redisconn"
local schema = require "urlproxy.schema"
local settings = require "urlproxy.settings"
local shdict = require "urlproxy.shdict"

local _M = {}

local CHANNEL = "__redis__:invalidate"
local NO_VERSION = "-" -- a PING whose version could not be read
local LONGEST_TOOL = 63 -- schema.TOOL_NAME: a longer key suffix names no tool
local TRACKING_LOST = "the tracking connection is gone"

-- A change of `<prefix><tool>` makes `tool` stale.
_M.TOOL_PREFIXES = { schema.PREFIX, schema.REDIRECT }

-- A change of one of these makes the block lists stale (not the block audit stream beside them).
local BLOCK_KEYS = {}
for kind in pairs(schema.BLOCK_LIMITS) do
    BLOCK_KEYS[schema.BLOCK_PREFIX .. kind] = true
end

local state = shdict.state()
local sub = string.sub
local timer_at = ngx.timer.at

local Session = {}
Session.__index = Session

local function connect(conf)
    local red = redis:new()
    red:set_timeout(conf.watcher_ping_ms)
    local ok, err = red:connect(conf.redis_host, conf.redis_port)
    if not ok then
        return nil, "connect to " .. conf.redis_host .. ":" .. conf.redis_port .. ": " .. tostring(err)
    end
    return red
end

local function tracking_command(sub_id)
    local args = { "TRACKING", "ON", "REDIRECT", sub_id, "BCAST" }
    for _, prefix in ipairs(_M.TOOL_PREFIXES) do
        args[#args + 1], args[#args + 2] = "PREFIX", prefix
    end
    args[#args + 1], args[#args + 2] = "PREFIX", schema.BLOCK_PREFIX
    args[#args + 1], args[#args + 2] = "PREFIX", schema.VERSION_KEY
    return args
end

-- Both connections, subscribed and tracking. On failure nothing is left open, and it returns nil,
-- why, and whether Redis answered (with an error: then it is up, just not usable for this).
local function open()
    local conf = settings.current
    local sub_conn, err = connect(conf)
    if not sub_conn then
        return nil, err, false
    end
    local tracking, sub_id, tracking_id, done
    sub_id, err = sub_conn:client("ID")
    if sub_id then
        done, err = sub_conn:subscribe(CHANNEL)
    end
    if done then
        tracking, err = connect(conf)
    end
    if tracking then
        tracking_id, err = tracking:client("ID")
        if tracking_id then
            done, err = tracking:client(unpack(tracking_command(sub_id)))
            if done == false then
                err = "CLIENT TRACKING (needs Redis 6 or later): " .. tostring(err)
                    .. "; route changes are seen only after cache_ttl"
            end
        end
    end
    if tracking_id and done == "OK" then
        return setmetatable({
            sub = sub_conn,
            tracking = tracking,
            tracking_id = tracking_id,
            outstanding = false, -- a PING was sent and its answer has not arrived yet
            misses = 0, -- read timeouts in a row since that PING
            want_ping = true, -- the first PING publishes the version at once
            again = false, -- the version changed while a PING was outstanding
            pinged_at = 0,
        }, Session)
    end
    sub_conn:close()
    if tracking then
        tracking:close()
    end
    -- lua-resty-redis answers false for an error reply, nil when the connection failed.
    return nil, err, sub_id == false or done == false or tracking_id == false
end

function Session:close()
    self.sub:close()
    self.tracking:close()
end

-- Whether CLIENT LIST's line for the tracking connection says it is gone or no longer tracking
-- ('t': tracking on; 'R': its redirect target is gone). An error answer (false) cannot tell.
local function tracking_lost(line)
    if type(line) ~= "string" then
        return false
    end
    local flags = line:match("flags=(%S*)")
    return flags == nil or not flags:find("t", 1, true) or flags:find("R", 1, true) ~= nil
end

-- The route store version, and CLIENT LIST's line for the tracking connection, asked on a pooled
-- connection; nil when that fails. This is a check, not a verdict: it never marks Redis down.
local function probe(tracking_id)
    local red = redisconn.connect()
    if not red then
        return nil
    end
    local version = red:get(schema.VERSION_KEY)
    local line = version ~= nil and red:client("LIST", "ID", tracking_id)
    if version == nil or line == nil then
        red:close()
        return nil
    end
    redisconn.release(red)
    if version == ngx.null then
        version = "0"
    elseif type(version) ~= "string" then
        version = NO_VERSION -- the version key holds something else (an error answer)
    end
    return version, line
end

-- Send a PING carrying the version and read one reply; TRACKING_LOST when that connection is gone.
function Session:ping()
    local version, line = probe(self.tracking_id)
    if tracking_lost(line) then
        return nil, TRACKING_LOST
    end
    self.outstanding, self.misses, self.want_ping, self.again = true, 0, false, false
    self.pinged_at = ngx.now()
    return self.sub:ping(version or NO_VERSION)
end

function Session:changed(key)
    if key == schema.VERSION_KEY then
        if self.outstanding then
            self.again = true
        else
            self.want_ping = true
        end
        return
    end
    if BLOCK_KEYS[key] then
        changes.publish(changes.BLOCKS)
        return
    end
    for _, prefix in ipairs(_M.TOOL_PREFIXES) do
        if sub(key, 1, #prefix) == prefix then
            local tool = sub(key, #prefix + 1)
            if #tool <= LONGEST_TOOL then
                changes.publish(tool)
            end
            return
        end
    end
end

function Session:on_reply(reply)
    state:set(shdict.WATCHER_EVENT_AT, ngx.now())
    self.misses = 0
    if type(reply) ~= "table" then
        return
    end
    if reply[1] == "message" and reply[2] == CHANNEL then
        local keys = reply[3]
        if type(keys) ~= "table" then -- nil: Redis dropped every key at once
            changes.publish_all("Redis dropped every key (FLUSHALL, or a replica's full resync)")
            return
        end
        for _, key in ipairs(keys) do
            self:changed(key)
        end
    elseif reply[1] == "pong" then
        self.outstanding = false
        redisconn.mark_up()
        local version = tonumber(reply[2])
        if version then
            state:set(shdict.VERSION, version)
        end
        self.want_ping = self.again
    end
end

-- Read and apply what Redis sends until a connection fails or the worker exits; returns why.
function Session:serve()
    local interval = settings.current.watcher_ping_ms / 1000
    while not ngx.worker.exiting() do
        local reply, err
        if self.want_ping or not self.outstanding and ngx.now() - self.pinged_at >= interval then
            reply, err = self:ping()
            if err == TRACKING_LOST then
                return err
            end
        else
            reply, err = self.sub:read_reply()
        end
        if reply then
            self:on_reply(reply)
        elseif err ~= "timeout" then
            return "subscriber connection: " .. tostring(err)
        elseif self.outstanding then
            self.misses = self.misses + 1
            if self.misses >= 2 then
                return "no answer to PING within " .. 2 * settings.current.watcher_ping_ms .. " ms"
            end
        else
            self.want_ping = true -- quiet: check that Redis still answers
        end
    end
    return nil
end

-- One subscription from open to close. Returns why it ended (nil: the worker exits), whether that
-- means Redis is down, and whether it had subscribed.
local function subscription()
    local session, err, answered = open()
    if not session then
        if answered and not changes.head() then
            -- Redis works but cannot tell us of changes: cache by cache_ttl alone, as for old writers.
            changes.publish_all("the watcher cannot subscribe")
        end
        return err, not answered, false
    end
    redisconn.mark_up()
    -- From here every change is seen; what was cached before may have missed some.
    changes.publish_all("the watcher subscribed to Redis")
    local ok, why = pcall(Session.serve, session)
    session:close()
    if not ok then
        return "watcher failed: " .. tostring(why), false, true
    end
    return why, why ~= TRACKING_LOST, true
end

local function run(premature)
    if premature then
        return
    end
    local failures = 0
    while not ngx.worker.exiting() do
        local ok, why, down, subscribed = pcall(subscription)
        if not ok then
            why, down, subscribed = "watcher failed: " .. tostring(why), false, false
        end
        if why == nil or ngx.worker.exiting() then
            return
        end
        -- The wait grows over attempts in a row that never got to subscribe.
        failures = subscribed and 1 or failures + 1
        if down then
            redisconn.mark_down("watcher: " .. why)
        else
            redisconn.log_error("route watcher: " .. why)
        end
        ngx.sleep(redisconn.backoff(failures))
    end
end

-- Start watching in worker 0 only; every worker reads the invalidation log it writes.
function _M.start()
    if ngx.worker.id() ~= 0 then
        return
    end
    local ok, err = timer_at(0, run)
    if not ok then
        ngx.log(ngx.ERR, "urlproxy: cannot start the route watcher: ", err)
    end
end

return _M
