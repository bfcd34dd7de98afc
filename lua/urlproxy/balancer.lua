-- The balancer phases of the two upstreams: connect to the chosen peer through a keepalive pool.
--
-- `route()` is the front's hot path: the whole routing decision from cached routes, in the one Lua
-- phase a proxied request cannot avoid. Whatever it cannot decide goes to the slow path's socket.
-- `balance()` serves the slow path, where urlproxy.lua's access phase has already chosen the
-- backend and passed it as $urlproxy_backend (which also picks the 503 page and is logged).
-- Backend URLs are read once per worker (backend.peer); host names take their address from the
-- resolver's cache (resolver.lua), never from DNS here: no I/O is allowed in this phase.
local ngx_balancer = require "ngx.balancer"
local backend = require "urlproxy.backend"
local metrics = require "urlproxy.metrics"
local resolver = require "urlproxy.resolver"
local settings = require "urlproxy.settings"
local urlproxy = require "urlproxy"

local _M = {}

local set_current_peer = ngx_balancer.set_current_peer
local recreate_request = ngx_balancer.recreate_request
local peer_of = backend.peer
local address_of = resolver.cached
local paths = metrics.paths

-- The slow path's server, as a peer (set_current_peer takes nginx's "unix:" address form).
local slow_host

local function slow()
    if not slow_host then
        slow_host = "unix:" .. settings.current.slow_socket
    end
    return slow_host
end

local function connect(host, port, url)
    local ok, err = set_current_peer(host, port)
    if not ok then
        ngx.log(ngx.ERR, "urlproxy: cannot use backend ", url, ": ", err)
        return ngx.exit(502)
    end
end

-- With `client_ip: hidden` the front's request carries no client address: nginx built it before
-- this phase, with $urlproxy_client empty. The slow path's server needs the address (its access
-- log, and the tools in client_ip_forwarded_tools), and so do those tools' own backends: set the
-- variable and have nginx build the request again. Only for these requests; the rest pay nothing.
local function reveal_client()
    ngx.var.urlproxy_client = ngx.var.remote_addr
    local ok, err = recreate_request()
    if not ok then
        ngx.log(ngx.ERR, "urlproxy: cannot pass on the client's address: ", err)
        return ngx.exit(500)
    end
end

function _M.route()
    local url, reveal = urlproxy.fast()
    local peer = url and peer_of(url)
    if peer then
        -- An IP literal, or a host name the resolver already has an address for (no I/O here).
        local host = peer.host or address_of(peer)
        if host then
            paths.fast = paths.fast + 1
            if reveal then
                reveal_client()
            end
            return connect(host, peer.port, url)
        end
    end
    paths.slow = paths.slow + 1
    -- The slow path's server logs and counts this request: the front's access log and metrics skip it.
    ngx.var.urlproxy_front_log = "0"
    if settings.current.client_ip == "hidden" then
        reveal_client()
    end
    return connect(slow(), nil, "slow path")
end

function _M.balance()
    local url = ngx.var.urlproxy_backend
    local peer, err = peer_of(url)
    if not peer then
        ngx.log(ngx.ERR, "urlproxy: balancer reached without a usable backend: ", err)
        return ngx.exit(500)
    end
    -- urlproxy.access() resolved a host name before coming here; a name that lost its address
    -- since (evicted from the dict) is unreachable for this request.
    local host = peer.host or address_of(peer)
    if not host then
        ngx.log(ngx.ERR, "urlproxy: no address for backend ", url)
        return ngx.exit(502)
    end
    return connect(host, peer.port, url)
end

return _M
