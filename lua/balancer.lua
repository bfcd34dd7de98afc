-- The balancer phase: connect to the peer urlproxy.lua chose, through the upstream's keepalive pool.
--
-- The choice arrives as $urlproxy_backend (set for the access log anyway), parsed once per worker
-- and URL: cheaper than a per-request ngx.ctx table.
local ngx_balancer = require "ngx.balancer"
local lrucache = require "resty.lrucache"
local backend = require "backend"

local _M = {}

local PEERS = 10000
local peers = lrucache.new(PEERS)

function _M.balance()
    local url = ngx.var.urlproxy_backend
    local peer = peers:get(url)
    if not peer then
        local err
        peer, err = backend.parse(url)
        if not peer then
            ngx.log(ngx.ERR, "urlproxy: balancer reached without a usable backend: ", err)
            return ngx.exit(500)
        end
        peers:set(url, peer)
    end
    local ok, err = ngx_balancer.set_current_peer(peer.host, peer.port)
    if not ok then
        ngx.log(ngx.ERR, "urlproxy: cannot use backend ", url, ": ", err)
        return ngx.exit(502)
    end
end

return _M
