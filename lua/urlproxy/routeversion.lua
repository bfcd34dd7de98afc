-- `/route-version` on the internal port: how far this nginx has followed the route store.
--
-- {"version": 12, "epoch": 1, "changes": 40, "worker": 0}. `version` is the route store version
-- (toolforgectl:routes:version) whose writes have all been applied: the watcher publishes it only
-- once every invalidation Redis sent before reading it has been handled (see watcher.lua), and each
-- worker sees a change at most one clock tick later. So once the answer shows version N, requests
-- see every route written up to N, and what the slow path caches stays fresh until its tool changes
-- again. Tests wait for it instead of sleeping past the watcher; an operator compares it with
-- `toolforgectl debug redis`'s routes_version to see whether a proxy has caught up. `epoch` counts
-- the times every tool was made stale at once (the watcher (re)subscribed, Redis was flushed),
-- `changes` is the answering worker's position in the invalidation log. `null`: not yet known.
local cjson = require "cjson.safe"
local routecache = require "urlproxy.routecache"
local shdict = require "urlproxy.shdict"

local _M = {}

local state = shdict.state()

function _M.serve()
    local head = routecache.token()
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cjson.encode({
        version = state:get(shdict.VERSION) or cjson.null,
        epoch = state:get(shdict.EPOCH) or cjson.null,
        changes = head or cjson.null,
        worker = ngx.worker.id(),
    }))
end

return _M
