-- init and init_worker: load the settings once in the master, then start the route watcher.
local settings = require "urlproxy.settings"

local _M = {}

-- Runs in the master at start and reload: a broken settings file stops nginx right there.
function _M.init()
    settings.load()
    -- Load every module now so a syntax error fails the start, not the first request.
    require "urlproxy"
    require "urlproxy.balancer"
    require "urlproxy.changes"
    require "urlproxy.routelist"
    require "urlproxy.routeversion"
    require "urlproxy.watcher"
    require("urlproxy.resolver").init()
end

function _M.init_worker()
    require("urlproxy.watcher").start()
    require("urlproxy.resolver").start()
end

return _M
