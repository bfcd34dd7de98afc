-- The access phase of every proxied request: which tool, which route, which backend.
--
-- Path mode (as the original): the first path segment is the tool and its route regexes are
-- matched against the rest of the path ("/" when empty), longest pattern first. On a miss,
-- `prefix:admin` is matched against the full URI, then the default backend applies, else 503.
-- Host mode: the left-most Host label is the tool and the routes see the full URI.
-- The chosen backend goes to balancer.lua as $urlproxy_backend; the URI is never rewritten.
-- $urlproxy_tool and $urlproxy_backend carry the choice to the access log.
local backend = require "backend"
local routecache = require "routecache"
local schema = require "schema"
local settings = require "settings"

local _M = {}

local find = string.find
local sub = string.sub
local re_find = ngx.re.find
local ngx_var = ngx.var
local exit = ngx.exit

local default_peer -- parsed once per worker

-- The tool named by the request and the part of the URI its routes are matched against.
local function split(uri)
    if settings.current.routing == "host" then
        local host = ngx_var.host
        local dot = find(host, ".", 1, true)
        return dot and sub(host, 1, dot - 1) or host, uri
    end
    local slash = find(uri, "/", 2, true)
    if not slash then
        return sub(uri, 2), "/"
    end
    return sub(uri, 2, slash - 1), sub(uri, slash)
end

-- The first of `tool`'s routes matching `subject`; nil, err when the routes cannot be known.
local function match(tool, subject)
    local routes, err = routecache.routes(tool)
    if not routes then
        return nil, err
    end
    for i = 1, #routes do
        local route = routes[i]
        -- ".*" (what every client registers) matches anything: skip the regex engine for it.
        if route.pattern == ".*" or re_find(subject, route.pattern, "jo") then
            return route
        end
    end
    return false
end

local function fallback()
    if default_peer == nil then
        default_peer = settings.current.default_backend and backend.parse(settings.current.default_backend)
            or false
    end
    return default_peer
end

-- Choose the peer, or finish the request with 503 (maintenance, or nothing to send it to).
function _M.access()
    if settings.current.maintenance then
        ngx_var.urlproxy_backend = "maintenance" -- selects the maintenance page (see the map)
        return exit(503)
    end
    local uri = ngx_var.uri
    local tool, rest = split(uri)
    local peer, err = false, nil
    if tool ~= "" then
        peer, err = match(tool, rest)
    end
    if peer == false then
        peer, err = match(schema.ADMIN_TOOL, uri)
        peer = peer or (peer == false and fallback())
    end
    if not peer then
        ngx_var.urlproxy_tool = tool
        ngx_var.urlproxy_backend = err and "unavailable" or "none"
        return exit(503)
    end
    ngx_var.urlproxy_tool = tool
    ngx_var.urlproxy_backend = peer.url
    if peer.scheme == "https" then
        return ngx.exec("@urlproxy_tls") -- keeps the URI; the hot http path stays variable-free
    end
end

return _M
