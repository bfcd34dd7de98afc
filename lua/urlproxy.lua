-- Which tool, which route, which backend: the routing decision of every proxied request.
--
-- Path mode (as the original): the first path segment is the tool and its route regexes are
-- matched against the rest of the path ("/" when empty), longest pattern first. On a miss,
-- `prefix:admin` is matched against the full URI, then the default backend applies, else 503.
-- Host mode: the left-most Host label is the tool and the routes see the full URI.
-- The URI is never rewritten, and it is the one routes see: the path as the client sent it
-- (`$request_uri` without the query), which the tool receives and by which a browser scopes cookies
-- and service workers. nginx's decoded, normalised `$uri` would let `/hello/..%2fecho/x` (`/echo/x`
-- there) reach `echo` with the cookies a browser keeps for `/hello/`.
--
-- Two entry points make the same decision. `fast()` runs in the front's balancer phase and uses
-- only fresh cached routes (no I/O is allowed there); when it cannot decide, or the answer is not a
-- plain http backend, the request takes the slow path: the internal server runs `access()`, which
-- may ask Redis, serves stale routes when Redis fails, and answers the 503s.
--
-- Canonical redirects (path mode, with `canonical_domain` set): a tool whose `redirect:<tool>` key
-- holds anything (what `registerCanonical` writes) answers every request with a redirect to
-- https://<tool>.<canonical_domain> and the rest of the path and query, as the 2020 data plane did.
-- The front hands such a tool to the slow path (no redirect can be sent from the balancer phase).
local backend = require "urlproxy.backend"
local blocks = require "urlproxy.blocks"
local metrics = require "urlproxy.metrics"
local rawrequest = require "urlproxy.rawrequest"
local redisconn = require "urlproxy.redisconn"
local resolver = require "urlproxy.resolver"
local routecache = require "urlproxy.routecache"
local schema = require "urlproxy.schema"
local settings = require "urlproxy.settings"

local _M = {}

local find = string.find
local sub = string.sub
local byte = string.byte
local S = string.byte("s")
local SLASH = string.byte("/")
local re_find = ngx.re.find
local ngx_var = ngx.var
local exit = ngx.exit

local default_url -- checked once per worker

-- match()'s error when the tool's answer is a canonical redirect, not a backend.
local REDIRECTED = "redirect"

local function is_https(url)
    return byte(url, 5) == S -- "https://..." (the route store allows only http and https)
end

-- The request's path exactly as the client sent it, without the query (see the top of the file).
local function raw_path()
    local raw = ngx_var.request_uri
    local query = find(raw, "?", 2, true)
    return query and sub(raw, 1, query - 1) or raw
end

-- Host mode: whether all of `host` after its first label (from `dot`) is one of the domains
-- server_name's wildcards name. nginx's `*.toolforge.org` also matches `b.a.toolforge.org`, whose
-- first label would make tool b the site of a.toolforge.org's subdomain (a's Domain cookies). No
-- domains (server_name `_`): any host.
local function under_a_domain(host, dot)
    local domains = settings.current.host_domains
    if #domains == 0 then
        return true
    end
    local rest = #host - dot + 1
    for i = 1, #domains do
        local domain = domains[i]
        if #domain == rest and find(host, domain, dot, true) == dot then
            return true
        end
    end
    return false
end

-- The tool named by the request. Path mode: the first segment of the URI as the client sent it,
-- cut from nginx's copy of it (rawrequest.lua): so a request whose tool routes everything (".*")
-- never makes a Lua string of its whole URI, which would be a new string per distinct URI for
-- LuaJIT to intern and collect (the 5,000-tool benchmark's largest cost).
local function tool_of_request()
    if settings.current.routing == "host" then
        local host = ngx_var.host
        local dot = find(host, ".", 1, true)
        if not dot then
            return host
        end
        return under_a_domain(host, dot) and sub(host, 1, dot - 1) or ""
    end
    return rawrequest.tool_segment()
end

-- What `tool`'s routes are matched against: path mode, the raw path after the tool's segment ("/"
-- when nothing follows it); host mode, the whole raw path. Asked for only by a route that is not ".*".
local function subject_of(tool)
    local uri = raw_path()
    if settings.current.routing == "host" then
        return uri
    end
    local rest = #tool + 2 -- after "/" .. tool
    return rest <= #uri and sub(uri, rest) or "/"
end

-- The backend URL of `tool`'s first route matching the request (`subject(tool)`, computed once
-- and only for a route that is not ".*"); false for none; nil, err when the routes cannot be
-- known, or nil, REDIRECTED when the tool redirects (only with `redirects`: never for admin).
-- `routes_of` is routecache.routes or routecache.cached.
local function match(routes_of, tool, subject, redirects)
    local routes, err = routes_of(tool)
    if not routes then
        return nil, err
    end
    if redirects and routes.redirect then
        return nil, REDIRECTED
    end
    local text -- what the patterns see, once one that is not ".*" needs it
    for i = 1, #routes, 2 do
        local pattern = routes[i]
        -- ".*" (what every client registers) matches anything: skip the regex engine for it.
        if pattern == ".*" then
            return routes[i + 1]
        end
        text = text or subject(tool)
        local from, _, match_err = re_find(text, pattern, "jo")
        if from then
            return routes[i + 1]
        end
        if match_err then
            -- Past lua_regex_match_limit: this request goes on without the route, and says so.
            redisconn.log_error(routecache.route_name(tool, pattern) .. " skipped: " .. match_err)
        end
    end
    return false
end

local function fallback()
    if default_url == nil then
        local url = settings.current.default_backend -- "" for none
        default_url = url ~= "" and backend.trust(url) and url or false
    end
    return default_url
end

-- The tool named by the request, and the backend URL for it: false when nothing routes it; nil and
-- an error when it is unknown. Fourth: whether the URL is one of the tool's own routes (not admin's
-- or the default backend).
local function choose(routes_of)
    local tool = tool_of_request()
    local url, err, own = false, nil, false
    if tool ~= "" then
        url, err = match(routes_of, tool, subject_of, true)
        own = url and true or false
    end
    if url == false then
        url, err = match(routes_of, schema.ADMIN_TOOL, raw_path)
        url = url or (url == false and fallback())
    end
    return tool, url, err, own
end

-- Tools that get the client's address although `client_ip` is "hidden": a set, read once per worker.
local revealed

-- Whether `tool`'s own backend gets the client's address that the config otherwise hides from
-- tools (with "forwarded" the template gives it to every tool; nothing to do here).
local function reveals(tool)
    if revealed == nil then
        revealed = {}
        if settings.current.client_ip == "hidden" then
            for _, name in ipairs(settings.current.client_ip_forwarded_tools) do
                revealed[name] = true
            end
        end
    end
    return revealed[tool] == true
end

-- The front's balancer phase: the http backend URL cached routes decide on, or nil for the slow path;
-- second, whether that backend may see the client's address (client_ip_forwarded_tools).
function _M.fast()
    if settings.current.maintenance then
        return nil
    end
    local tool, url, _, own = choose(routecache.cached)
    if url and not is_https(url) then
        -- The block lists, unless they changed in Redis since this worker read them (the lookup
        -- just applied the invalidation log), else the slow path (it reads them); a request they
        -- block goes there too, to be answered 403.
        local blocking = blocks.current
        if not blocking or blocking.stale then
            return nil
        end
        if blocking.active and blocks.match(blocking) then
            return nil
        end
        ngx_var.urlproxy_tool = tool
        metrics.routed(tool)
        return url, own and reveals(tool)
    end
    return nil
end

-- The canonical address of `tool` for this request: its host, then the client's raw URI after the
-- tool's segment (path and query as sent, "/" when there is no path left).
local function canonical_url(tool)
    local uri = ngx_var.request_uri
    local rest = find(uri, "[/?]", 2) -- the end of the first segment, by a pattern without captures
    rest = rest and sub(uri, rest) or ""
    if byte(rest, 1) ~= SLASH then
        rest = "/" .. rest
    end
    return "https://" .. tool .. "." .. settings.current.canonical_domain .. rest
end

-- 301 for GET and HEAD (browsers and search engines move to the canonical address for good); 308
-- for the rest, so a form's POST keeps its method and body (why the original moved from 302 to 307).
local function redirect(tool)
    local method = ngx_var.request_method
    local status = (method == "GET" or method == "HEAD") and 301 or 308
    return ngx.redirect(canonical_url(tool), status)
end

-- The slow path's access phase: choose the peer (for balancer.lua, as $urlproxy_backend), or finish
-- the request with 503 (maintenance, or nothing to send it to) or 403 (a block list refuses it).
function _M.access()
    if settings.current.maintenance then
        ngx_var.urlproxy_backend = "maintenance" -- selects the maintenance page (see the map)
        return exit(503)
    end
    local blocked = blocks.match(blocks.load())
    if blocked then
        ngx_var.urlproxy_backend = "blocked-" .. blocked -- logged as chosen=, selects the 403 page
        metrics.blocked(blocked)
        return exit(403)
    end
    local tool, url, err, own = choose(routecache.routes)
    ngx_var.urlproxy_tool = tool
    if err == REDIRECTED then
        ngx_var.urlproxy_backend = "redirect"
        return redirect(tool)
    end
    if not url then
        ngx_var.urlproxy_backend = err and "unavailable" or "none"
        return exit(503)
    end
    ngx_var.urlproxy_backend = url
    if own and reveals(tool) then
        ngx_var.urlproxy_client = ngx_var.remote_addr -- X-Forwarded-For, X-Real-IP (the template)
    end
    if not resolver.ready(url) then
        return exit(502) -- a host name without a usable address (resolver.lua logged why)
    end
    if is_https(url) then
        -- Keeps the URI; the http path stays variable-free. A WebSocket keeps its long timeouts.
        local websocket = ngx_var.urlproxy_upgrade == "websocket" -- the template's map
        return ngx.exec(websocket and "@urlproxy_tls_websocket" or "@urlproxy_tls")
    end
end

return _M
