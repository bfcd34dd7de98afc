-- Each tool's routes, cached per worker (parsed) and per server (shared dict), from Redis on a miss.
--
-- An entry is fresh while it carries the current version token (the route store's write counter,
-- published by watcher.lua) and is younger than `cache_ttl`. Stale entries are kept: when Redis
-- fails they are served as they are (stale-if-error), so known tools keep working.
local cjson = require "cjson.safe"
local lrucache = require "resty.lrucache"
local backend = require "backend"
local redisconn = require "redisconn"
local schema = require "schema"
local settings = require "settings"

local _M = {}

local ngx_now = ngx.now
local re_find = ngx.re.find
local table_sort = table.sort

local shared = ngx.shared.urlproxy_routes
local state = ngx.shared.urlproxy_state

local lru -- per worker, created on first use so that lru_size comes from the settings

-- Only names the route store could hold reach Redis (checked on a cache miss, not per request).
local TOOL_NAME = [[^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$]]
local NO_ROUTES = {}

local function worker_cache()
    if not lru then
        lru = assert(lrucache.new(settings.current.lru_size))
    end
    return lru
end

-- Longest pattern first, then lexical: a deterministic order, unlike the original's `pairs()`.
local function before(a, b)
    if #a.pattern ~= #b.pattern then
        return #a.pattern > #b.pattern
    end
    return a.pattern < b.pattern
end

-- The ordered route list from HGETALL's flat reply; unusable backends are logged and skipped.
local function build(flat)
    local routes = {}
    for i = 1, #flat, 2 do
        local peer, err = backend.parse(flat[i + 1])
        if peer then
            peer.pattern = flat[i]
            routes[#routes + 1] = peer
        else
            redisconn.log_error("ignoring a stored route: " .. err)
        end
    end
    table_sort(routes, before)
    return routes
end

local function fetch(tool)
    local red, err = redisconn.connect()
    if not red then
        return nil, err
    end
    local flat
    flat, err = red:hgetall(schema.PREFIX .. tool)
    if flat == false then
        -- Redis answered with an error (e.g. WRONGTYPE): this key is unusable, Redis is fine.
        redisconn.release(red)
        redisconn.log_error("HGETALL " .. schema.PREFIX .. tool .. " answered " .. tostring(err))
        return {}
    end
    if not flat then
        red:close()
        return nil, "HGETALL " .. schema.PREFIX .. tool .. ": " .. tostring(err)
    end
    redisconn.release(red)
    return build(flat)
end

local function encode(entry)
    local pairs_ = {}
    for i, route in ipairs(entry.routes) do
        pairs_[i] = { route.pattern, route.url }
    end
    return cjson.encode({ token = entry.token, at = entry.at, routes = pairs_ })
end

local function decode(text)
    local data = cjson.decode(text)
    if type(data) ~= "table" or type(data.routes) ~= "table" then
        return nil
    end
    local flat = {}
    for _, pair in ipairs(data.routes) do
        flat[#flat + 1] = pair[1]
        flat[#flat + 1] = pair[2]
    end
    return { token = data.token, at = data.at, routes = build(flat) }
end

local function fresh(entry, token)
    return token ~= nil and entry.token == token and ngx_now() - entry.at < settings.current.cache_ttl
end

local function remember(tool, entry)
    worker_cache():set(tool, entry)
    -- `set` evicts the least recently used tools when the dict is full, which is what we want.
    shared:set(tool, encode(entry))
end

-- The version token every fresh entry must carry; nil until the watcher first reached Redis.
function _M.token()
    return state:get("token")
end

-- `tool`'s ordered routes (possibly empty), and "stale" when served despite a Redis failure;
-- nil and an error when they are unknown and Redis cannot tell.
function _M.routes(tool)
    local token = state:get("token")
    local cache = worker_cache()
    local entry = cache:get(tool)
    if entry and fresh(entry, token) then
        return entry.routes
    end
    if not entry and not re_find(tool, TOOL_NAME, "jo") then
        return NO_ROUTES
    end
    local text = shared:get(tool)
    local shared_entry = text and decode(text)
    if shared_entry then
        entry = shared_entry
        cache:set(tool, entry)
        if fresh(entry, token) then
            return entry.routes
        end
    end
    if not redisconn.available() then
        if entry then
            return entry.routes, "stale"
        end
        return nil, "route store unavailable"
    end
    local routes, err = fetch(tool)
    if not routes then
        redisconn.mark_down(err)
        if entry then
            return entry.routes, "stale"
        end
        return nil, err
    end
    remember(tool, { token = token, at = ngx_now(), routes = routes })
    return routes
end

return _M
