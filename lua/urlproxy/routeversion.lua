-- `/route-version` on the internal port: which route store version this nginx routes by.
--
-- {"version": 12, "epoch": 0, "token": "12/0", "worker": 0}: the token of the answering worker.
-- Every worker reads the same shared-dict slot (at most one clock tick after the watcher published
-- it), so once the answer shows version N, every route written up to N is what requests see, and
-- what the slow path caches stays fresh until the next write. Tests wait for it instead of sleeping
-- past the watcher's poll; an operator compares it with `toolforgectl debug redis`'s routes_version to see
-- whether a proxy has caught up. `null` fields: the watcher has not reached Redis yet.
local cjson = require "cjson.safe"
local routecache = require "urlproxy.routecache"

local _M = {}

function _M.serve()
    local token = routecache.token()
    local version, epoch
    if token then
        version, epoch = token:match("^(%d+)/(%d+)$")
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cjson.encode({
        version = tonumber(version) or cjson.null,
        epoch = tonumber(epoch) or cjson.null,
        token = token or cjson.null,
        worker = ngx.worker.id(),
    }))
end

return _M
