-- The balancer phases of the two upstreams: connect to the chosen peer through a keepalive pool.
--
-- `route()` is the front's hot path: the whole routing decision from cached routes, in the one Lua
-- phase a proxied request cannot avoid. Whatever it cannot decide goes to the slow path's socket.
-- `balance()` serves the slow path, where urlproxy.lua's access phase has already chosen the
-- backend and passed it as $urlproxy_backend (which also picks the 503 page and is logged).
local ngx_balancer = require "ngx.balancer"
local backend = require "urlproxy.backend"
local settings = require "urlproxy.settings"
local urlproxy = require "urlproxy"

local _M = {}

local set_current_peer = ngx_balancer.set_current_peer
local recreate_request = ngx_balancer.recreate_request

-- Backend URL -> parsed peer, per worker: a route's URL is parsed once, not per request. A plain
-- table (a hit is one lookup), emptied when it holds `peer_cache_size` URLs.
local peers, count = {}, 0

local function peer_of(url)
    local peer = peers[url]
    if peer then
        return peer
    end
    local err
    peer, err = backend.parse(url)
    if not peer then
        return nil, err
    end
    count = count + 1
    if count > settings.current.peer_cache_size then
        peers, count = {}, 1
    end
    peers[url] = peer
    return peer
end

-- The slow path's server, as a peer (set_current_peer takes nginx's "unix:" address form).
local slow_peer

local function slow()
    if not slow_peer then
        slow_peer = { host = "unix:" .. settings.current.slow_socket }
    end
    return slow_peer
end

local function connect(peer, url)
    local ok, err = set_current_peer(peer.host, peer.port)
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
        if reveal then
            reveal_client()
        end
        return connect(peer, url)
    end
    if settings.current.client_ip == "hidden" then
        reveal_client()
    end
    return connect(slow(), "slow path")
end

function _M.balance()
    local url = ngx.var.urlproxy_backend
    local peer, err = peer_of(url)
    if not peer then
        ngx.log(ngx.ERR, "urlproxy: balancer reached without a usable backend: ", err)
        return ngx.exit(500)
    end
    return connect(peer, url)
end

return _M
