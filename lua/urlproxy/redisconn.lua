-- Per-request Redis connections (with keepalive), the shared "Redis is down" switch, and quiet error logs.
local redis = require "nginx.redis"
local settings = require "urlproxy.settings"
local shdict = require "urlproxy.shdict"

local _M = {}

local ngx_now = ngx.now
local ngx_log = ngx.log
local ERR = ngx.ERR

-- Shared by every worker: DOWN_UNTIL (set on failure, cleared by the watcher) and FAILURES.
local state = shdict.state()
local DOWN_UNTIL, FAILURES = shdict.DOWN_UNTIL, shdict.FAILURES
local LOG_GATE, LOG_SUPPRESSED = shdict.LOG_GATE, shdict.LOG_SUPPRESSED

-- Log `message` at most once per `error_log_interval` seconds for the whole nginx (the workers share
-- the gate), counting what was held back: with Redis down or hung, every request and the watcher
-- would otherwise log the same line. (nginx's own socket errors are off: lua_socket_log_errors.)
function _M.log_error(message)
    local opened, err = state:add(LOG_GATE, true, settings.current.error_log_interval)
    if not opened and err == "exists" then
        state:incr(LOG_SUPPRESSED, 1, 0)
        return
    end
    local suppressed = state:get(LOG_SUPPRESSED) or 0
    if suppressed > 0 then
        state:set(LOG_SUPPRESSED, 0)
        message = message .. " (" .. suppressed .. " similar messages suppressed)"
    end
    ngx_log(ERR, "urlproxy: ", message)
end

-- Whether requests may try Redis now (false while a recent failure's back-off runs).
function _M.available()
    local down_until = state:get(DOWN_UNTIL)
    return not down_until or ngx_now() >= down_until
end

-- Whether Redis was marked down and the watcher has not yet seen it answer again.
function _M.marked_down()
    return state:get(DOWN_UNTIL) ~= nil
end

-- How long (seconds) requests leave Redis alone after the `failures`-th failure in a row:
-- `redis_backoff_ms`, doubling with each failure, at most `redis_backoff_max_ms`.
function _M.backoff(failures)
    local conf = settings.current
    -- The exponent's cap only keeps the number finite; the maximum is reached long before it.
    local ms = conf.redis_backoff_ms * 2 ^ math.min(failures - 1, 30)
    return math.min(conf.redis_backoff_max_ms, ms) / 1000
end

-- Record a failure: requests stop trying Redis for an exponentially growing back-off.
function _M.mark_down(reason)
    local failures = state:incr(FAILURES, 1, 0) or 1
    local backoff = _M.backoff(failures)
    state:set(DOWN_UNTIL, ngx_now() + backoff)
    _M.log_error("route store unavailable (backing off " .. backoff .. "s): " .. tostring(reason))
end

-- Record that Redis answered; returns true if it had been marked down.
function _M.mark_up()
    local was_down = state:get(DOWN_UNTIL) ~= nil
    if was_down then
        state:delete(DOWN_UNTIL)
        state:set(FAILURES, 0)
        ngx_log(ngx.NOTICE, "urlproxy: route store reachable again")
    end
    return was_down
end

-- A connected client, or nil and an error; short timeouts so a hung Redis costs little.
function _M.connect()
    local conf = settings.current
    local red = redis:new()
    red:set_timeout(conf.redis_timeout_ms)
    local ok, err = red:connect(conf.redis_host, conf.redis_port)
    if not ok then
        return nil, "connect to " .. conf.redis_host .. ":" .. conf.redis_port .. ": " .. tostring(err)
    end
    if conf.redis_db ~= 0 and (red:get_reused_times() or 0) == 0 then
        ok, err = red:select(conf.redis_db)
        if not ok then
            red:close()
            return nil, "select " .. conf.redis_db .. ": " .. tostring(err)
        end
    end
    return red
end

-- Hand the connection back to the worker's keepalive pool.
function _M.release(red)
    local conf = settings.current
    local ok, err = red:set_keepalive(conf.redis_keepalive_ms, conf.redis_pool_size)
    if not ok then
        _M.log_error("cannot keep the Redis connection alive: " .. tostring(err))
    end
end

return _M
