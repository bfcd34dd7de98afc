-- Publishes the route store's version token to every worker, so caches invalidate within one poll.
--
-- One worker polls `toolforgectl:routes:version` (which every route store write bumps) every
-- `invalidation_poll_ms`. The token is "<version>/<epoch>": the epoch grows whenever Redis comes
-- back after a failure, so entries cached before an outage are re-read once Redis answers again.
local redisconn = require "urlproxy.redisconn"
local schema = require "urlproxy.schema"
local settings = require "urlproxy.settings"
local shdict = require "urlproxy.shdict"

local _M = {}

local timer_at = ngx.timer.at
local state = shdict.state()

local function poll()
    local red, err = redisconn.connect()
    local version
    if red then
        version, err = red:get(schema.VERSION_KEY)
        if version then
            redisconn.release(red)
        else
            red:close()
        end
    end
    if not version then
        redisconn.mark_down(err)
        return
    end
    if version == ngx.null then
        version = "0"
    end
    local epoch = state:get(shdict.EPOCH) or 0
    if redisconn.mark_up() then
        epoch = state:incr(shdict.EPOCH, 1, 0)
    end
    state:set(shdict.TOKEN, version .. "/" .. epoch)
end

local function tick(premature)
    if premature then
        return
    end
    local ok, err = pcall(poll)
    if not ok then
        redisconn.log_error("version watcher failed: " .. tostring(err))
    end
    -- Re-arm after the poll, not on a fixed clock, so a slow Redis never stacks up polls.
    ok, err = timer_at(settings.current.invalidation_poll_ms / 1000, tick)
    if not ok and err ~= "process exiting" then
        ngx.log(ngx.ERR, "urlproxy: cannot re-arm the version watcher: ", err)
    end
end

-- Start polling in worker 0 only; every worker reads the token from the shared dict.
function _M.start()
    if ngx.worker.id() ~= 0 then
        return
    end
    local ok, err = timer_at(0, tick)
    if not ok then
        ngx.log(ngx.ERR, "urlproxy: cannot start the version watcher: ", err)
    end
end

return _M
