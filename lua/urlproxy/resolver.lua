-- Host-name backends (`http://tools-webgrid-lighttpd-1205.tools.eqiad.wmflabs:33555`): their
-- addresses, resolved off the request path.
--
-- One shared dict holds, per name, the address in use, when to ask DNS again (its TTL, clamped to
-- `resolver_min_ttl`..`resolver_max_ttl`) and whether the address is "near" (a proxy's own or
-- loopback: the proxies' service ports are refused there). Worker 0 re-resolves due names once a
-- second in a timer; each worker keeps what it read until that time, so the front's balancer
-- phase (`cached`, no I/O) pays one table lookup. A name not seen yet has no address there: the
-- request takes the slow path, whose access phase asks DNS at once (`resolve`, one try of
-- `resolver_timeout_ms`) and stores the answer for everyone.
--
-- When DNS fails (timeout, refused, SERVFAIL) the last good address is kept and asked for again
-- after `resolver_min_ttl`. When DNS answers that the name has no usable address (NXDOMAIN, no
-- record, or only addresses the destination rule refuses: backend.lua), the address is dropped:
-- a grid host that was removed must not keep receiving a tool's visitors at an address that may
-- have been given to another VM. Such requests get 502, and the reason is logged (rate-limited).
local dns_resolver = require "nginx.dns.resolver"
local backend = require "urlproxy.backend"
local redisconn = require "urlproxy.redisconn"
local settings = require "urlproxy.settings"
local shdict = require "urlproxy.shdict"

local _M = {}

local ngx_now = ngx.now
local timer_at = ngx.timer.at
local match = string.match
local format = string.format
local tonumber = tonumber
local max = math.max
local min = math.min

local dict = shdict.dns()

-- How often worker 0 looks for due names, and how many it asks DNS about at once.
local REFRESH_INTERVAL = 1
local PARALLEL = 16
-- A worker re-reads an entry whose refresh is overdue at most this often (seconds).
local RECHECK = 1
local RESOLV_CONF = "/etc/resolv.conf"

-- name -> { host = "10.0.0.5" | "[2001:db8::5]" | false, near = bool, recheck = time }
local entries, count = {}, 0

-- Shared dict values: "<host or empty>|<expires>|<near 0/1>".
local function encode(host, expires, near)
    return format("%s|%.3f|%d", host or "", expires, near and 1 or 0)
end

local function decode(value)
    local host, expires, near = match(value or "", "^([^|]*)|([^|]+)|([01])$")
    if not host then
        return nil
    end
    return { host = host ~= "" and host or false, expires = tonumber(expires), near = near == "1" }
end

-- Nameservers ------------------------------------------------------------------------------------

-- One "ip", "ip:port", "[ipv6]" or "[ipv6]:port" as {host, port} for lua-resty-dns (IPv6 in
-- brackets, as nginx parses a peer), or nil.
local function nameserver(text)
    local host, port = match(text, "^(%[[%x:.]+%])(:?%d*)$")
    if not host then
        host, port = match(text, "^([%d.]+)(:?%d*)$")
    end
    if not host then
        if match(text, "^[%x:]*:[%x:.]*$") then -- a bare IPv6 address (resolv.conf)
            return { "[" .. text .. "]", 53 }
        end
        return nil
    end
    port = tonumber(port:sub(2)) or 53
    return { host, port }
end

-- The nameservers of `resolver` (space-separated, as nginx's `resolver` directive), or of
-- /etc/resolv.conf when it is empty (its "nameserver" lines; 127.0.0.1 if none, as libc does).
function _M.nameservers(spec, resolv_conf)
    local found = {}
    if spec ~= "" then
        for text in spec:gmatch("%S+") do
            found[#found + 1] = nameserver(text)
        end
        return found
    end
    local file = io.open(resolv_conf or RESOLV_CONF, "r")
    if file then
        for line in file:lines() do
            local text = match(line, "^%s*nameserver%s+(%S+)")
            -- A scoped IPv6 address (fe80::1%eth0) cannot be a peer; skip it.
            local server = text and not text:find("%", 1, true) and nameserver(text)
            found[#found + 1] = server or nil
        end
        file:close()
    end
    if #found == 0 then
        found[1] = { "127.0.0.1", 53 }
    end
    return found
end

local servers -- per worker, read once (init() reads them in the master, before the fork)

local function current_servers()
    if not servers then
        servers = _M.nameservers(settings.current.resolver)
    end
    return servers
end

-- The answers ------------------------------------------------------------------------------------

local function clamp(ttl)
    local conf = settings.current
    return max(conf.resolver_min_ttl, min(conf.resolver_max_ttl, tonumber(ttl) or 0))
end

-- Ask DNS about `name`: host, ttl, near; or false and why (DNS says there is no usable address);
-- or nil and the error (no answer: DNS is failing).
local function query(name, retrans)
    local list = {}
    for i, server in ipairs(current_servers()) do
        list[i] = { server[1], server[2] } -- lua-resty-dns rewrites the table it is given
    end
    local r, err = dns_resolver:new({
        nameservers = list,
        retrans = retrans,
        timeout = settings.current.resolver_timeout_ms,
    })
    if not r then
        return nil, err
    end
    local refused
    for _, qtype in ipairs({ r.TYPE_A, r.TYPE_AAAA }) do
        local answers, qerr = r:query(name, { qtype = qtype })
        if not answers then
            return nil, qerr
        end
        if answers.errcode == 3 then
            return false, "does not exist"
        end
        if answers.errcode then
            return nil, format("the server answered %s (%s)", answers.errcode, tostring(answers.errstr))
        end
        for _, answer in ipairs(answers) do
            if answer.type == qtype then
                local host, near_or_why = backend.resolved(answer.address)
                if host then
                    return host, clamp(answer.ttl), near_or_why
                end
                refused = "resolves to " .. answer.address .. ", which " .. near_or_why
            end
        end
    end
    return false, refused or "has no address"
end

local function remember(name, entry, now)
    if entries[name] == nil then
        count = count + 1
        if count > settings.current.peer_cache_size then
            entries, count = {}, 1
        end
    end
    entry.recheck = entry.expires > now and entry.expires or now + RECHECK
    entries[name] = entry
    return entry
end

-- Ask DNS about `name` now and store the outcome for every worker; returns the new entry.
local function refresh(name, retrans)
    local host, a, b = query(name, retrans)
    local now = ngx_now()
    local retry = now + settings.current.resolver_min_ttl
    local entry
    if host then
        entry = { host = host, expires = now + a, near = b }
    elseif host == false then
        entry = { host = false, expires = retry, near = false }
        redisconn.log_error("host name " .. name .. " " .. a .. ": its routes answer 502")
    else
        local last = decode(dict:get(name)) or { host = false, near = false }
        entry = { host = last.host, expires = retry, near = last.near }
        local kept = last.host and ("keeping " .. last.host) or "no address yet"
        redisconn.log_error("cannot resolve " .. name .. " (" .. tostring(a) .. "); " .. kept)
    end
    dict:set(name, encode(entry.host, entry.expires, entry.near))
    return remember(name, entry, now)
end

-- The entry this worker holds for `name` (re-read from the shared dict when due), or nil.
local function entry_of(name, now)
    local entry = entries[name]
    if entry and now < entry.recheck then
        return entry
    end
    entry = decode(dict:get(name))
    if not entry then
        entries[name] = nil
        return nil
    end
    return remember(name, entry, now)
end

local function host_for(entry, peer)
    if not entry.host then
        return nil, "host name " .. peer.name .. " has no usable address"
    end
    if entry.near and backend.service_port(peer.port) then
        return nil, "host name " .. peer.name .. " resolves to " .. entry.host .. ", port " .. peer.port
            .. " of which is a proxy's service"
    end
    return entry.host
end

-- The request path ------------------------------------------------------------------------------

-- The address to connect to for a host-name peer, from what is cached; nil if none is known (yet).
-- For the balancer phase: no I/O.
function _M.cached(peer)
    local entry = entry_of(peer.name, ngx_now())
    return entry and (host_for(entry, peer))
end

-- The same, asking DNS at once (one try) when the name was never resolved: for the slow path's
-- access phase. nil and why when there is no address to use.
function _M.resolve(peer)
    local entry = entry_of(peer.name, ngx_now()) or refresh(peer.name, 1)
    return host_for(entry, peer)
end

-- For the slow path's access phase, once it chose `url`: false when it names a host whose address
-- cannot be used (the request then gets 502; why is logged), else true.
function _M.ready(url)
    local peer = backend.peer(url)
    if not (peer and peer.name) then
        return true
    end
    local host, why = _M.resolve(peer)
    if not host then
        redisconn.log_error(why)
        return false
    end
    return true
end

-- The refresher ----------------------------------------------------------------------------------

-- Re-resolve every name whose TTL ran out, PARALLEL at a time.
function _M.refresh_due()
    local now = ngx_now()
    local due = {}
    for _, name in ipairs(dict:get_keys(0)) do
        local entry = decode(dict:get(name))
        if entry and entry.expires <= now then
            due[#due + 1] = name
        end
    end
    for first = 1, #due, PARALLEL do
        local threads = {}
        for i = first, min(#due, first + PARALLEL - 1) do
            threads[#threads + 1] = ngx.thread.spawn(refresh, due[i], 2)
        end
        for _, thread in ipairs(threads) do
            ngx.thread.wait(thread)
        end
    end
    return #due
end

local function tick(premature)
    if premature then
        return
    end
    local ok, err = pcall(_M.refresh_due)
    if not ok then
        redisconn.log_error("host name refresher failed: " .. tostring(err))
    end
    ok, err = timer_at(REFRESH_INTERVAL, tick)
    if not ok and err ~= "process exiting" then
        ngx.log(ngx.ERR, "urlproxy: cannot re-arm the host name refresher: ", err)
    end
end

-- Read the nameservers once, in the master (init_by_lua): workers inherit them.
function _M.init()
    current_servers()
end

-- Start refreshing in worker 0 only; every worker reads the addresses from the shared dict.
function _M.start()
    if ngx.worker.id() ~= 0 then
        return
    end
    local ok, err = timer_at(REFRESH_INTERVAL, tick)
    if not ok then
        ngx.log(ngx.ERR, "urlproxy: cannot start the host name refresher: ", err)
    end
end

return _M
