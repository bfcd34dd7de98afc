-- The balancer phase: connect to the peer urlproxy.lua chose, through the upstream's keepalive pool.
local ngx_balancer = require "ngx.balancer"

local _M = {}

function _M.balance()
    local peer = ngx.ctx.urlproxy_peer
    if not peer then
        ngx.log(ngx.ERR, "urlproxy: balancer reached without a chosen backend")
        return ngx.exit(500)
    end
    local ok, err = ngx_balancer.set_current_peer(peer.host, peer.port)
    if not ok then
        ngx.log(ngx.ERR, "urlproxy: cannot use backend ", peer.url, ": ", err)
        return ngx.exit(502)
    end
end

return _M
