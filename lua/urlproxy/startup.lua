-- init and init_worker: load the settings once in the master, then start the route watcher and
-- each worker's timers: metrics flush, refresh of old route entries, resolver.
local settings = require "urlproxy.settings"

local _M = {}

-- Runs in the master at start and reload: a broken settings file stops nginx right there.
function _M.init()
    settings.load()
    -- Load every module now so a syntax error fails the start, not the first request.
    require "urlproxy"
    require "urlproxy.balancer"
    require "urlproxy.blocks"
    require "urlproxy.changes"
    require "urlproxy.metrics"
    require "urlproxy.routelist"
    require "urlproxy.routeversion"
    require "urlproxy.timers"
    require "urlproxy.watcher"
    require("urlproxy.resolver").init()
end

function _M.init_worker()
    require("urlproxy.watcher").start()
    require("urlproxy.metrics").start()
    require("urlproxy.routecache").start()
    require("urlproxy.resolver").start()
end

return _M
