-- Each tool's routes, cached per worker and per server (shared dict), from Redis on a miss.
--
-- An entry is fresh while it is younger than `cache_ttl` and its tool has not changed in Redis
-- since it was read: the watcher publishes every change as a numbered entry of the invalidation
-- log (changes.lua), each worker reads the log's head at most once per clock tick and marks the
-- entries of exactly the tools that changed stale. Stale entries are kept: when Redis fails they
-- are served as they are (stale-if-error), so known tools keep working.
--
-- Refresh-ahead: an entry that outlived `cache_ttl` while the log never named its tool is still
-- served by the front, for at most one more `cache_ttl`, while this worker's refresh timer re-reads
-- it from Redis; so at thousands of tools the re-reads `cache_ttl` asks for happen in the background
-- instead of sending each tool's next request to the slow path (a wave every `cache_ttl` seconds,
-- which showed in the benchmark's throughput and p99). While Redis is marked down, or past twice
-- `cache_ttl`, the front hands the request to the slow path as for any stale entry.
--
-- What one tool costs a request is bounded here: an entry holds at most `max_routes_per_tool`
-- routes (the first in match order, whatever another writer put in Redis), and a route whose
-- backend or regex nginx cannot use is logged and left out when the entry is built, not retried
-- per request.
local cjson = require "cjson.safe"
local backend = require "urlproxy.backend"
local changes = require "urlproxy.changes"
local redisconn = require "urlproxy.redisconn"
local schema = require "urlproxy.schema"
local settings = require "urlproxy.settings"
local shdict = require "urlproxy.shdict"
local timers = require "urlproxy.timers"

local _M = {}

local ngx_now = ngx.now
local re_find = ngx.re.find
local table_sort = table.sort
local gsub = string.gsub
local min = math.min

local shared = shdict.routes()

-- Per worker: tool -> entry. A plain table (a hit is one lookup), bounded by emptying it when it
-- holds `worker_cache_size` tools; the shared dict still holds every entry, so nothing is lost.
local entries, count = {}, 0

-- Name -> entry that another module caches under the same invalidation as routes, under a name no
-- tool can have (blocks.lua's lists, as changes.BLOCKS): never dropped with the tools' table, and
-- marked stale as a tool's entry is.
local pinned = {}

local function mark_stale(tool)
    local entry = entries[tool] or pinned[tool]
    if entry then
        entry.stale = true
    end
end

local function drop_all()
    entries, count = {}, 0
    for _, entry in pairs(pinned) do
        entry.stale = true
    end
end

-- The invalidation log's head as this worker last read it, and nginx's cached clock at that read.
-- The shared dict (a lock and a tree walk) is read at most once per clock tick (1 ms), not once per
-- request: a change reaches this worker at most one tick later than the watcher published it.
local seen_head, seen_at = nil, -1

local function current_head(now)
    if now ~= seen_at then
        seen_at = now
        local head = changes.head()
        if head ~= seen_head then
            if not changes.walk(seen_head, head, mark_stale) then
                drop_all() -- every tool changed (or the log cannot tell which)
            end
            seen_head = head
        end
    end
    return seen_head
end

-- Only names the route store could hold reach Redis (checked on a cache miss, not per request).
local TOOL_NAME = "^" .. schema.TOOL_NAME .. "$"
local NO_ROUTES = {}

local function keep(tool, entry)
    if entries[tool] == nil then
        count = count + 1
        if count > settings.current.worker_cache_size then
            entries, count = {}, 1
        end
    end
    entries[tool] = entry
end

-- Longest pattern first, then lexical: a deterministic order, unlike the original's `pairs()`.
local function before(a, b)
    if #a[1] ~= #b[1] then
        return #a[1] > #b[1]
    end
    return a[1] < b[1]
end

-- How the error log names a route: its pattern is whatever a writer stored, control bytes included.
function _M.route_name(tool, pattern)
    return "route " .. gsub(pattern, "%c", "?") .. " of tool " .. tool
end

-- Why nginx cannot use the route `pattern` -> `url`, or nil: a backend outside the grammar or
-- where this fleet lets no route point, or a regex PCRE cannot compile. The regex is compiled with
-- the flags requests use, so the compiled pattern is already in the worker's regex cache for them.
local function unusable(tool, pattern, url)
    local peer, err = backend.usable(url)
    if not peer then
        return err
    end
    if pattern ~= ".*" then
        local _, _, compile_err = re_find("", pattern, "jo")
        if compile_err then
            return _M.route_name(tool, pattern) .. " does not compile: " .. compile_err
        end
    end
    return nil
end

-- HGETALL's flat reply as an ordered flat list {pattern1, url1, pattern2, url2, ...}: one table
-- per tool keeps the Lua heap (and the garbage collector's work) small at thousands of tools.
-- Only the first `max_routes_per_tool` in match order are kept; unusable ones are logged and skipped.
local function build(tool, flat)
    local pairs_ = {}
    for i = 1, #flat, 2 do
        pairs_[#pairs_ + 1] = { flat[i], flat[i + 1] }
    end
    table_sort(pairs_, before)
    local cap = settings.current.max_routes_per_tool
    if #pairs_ > cap then
        redisconn.log_error(("tool %s has %d routes, more than max_routes_per_tool: routing by the first %d")
            :format(tool, #pairs_, cap))
    end
    local routes = {}
    for i = 1, min(#pairs_, cap) do
        local pattern, url = pairs_[i][1], pairs_[i][2]
        local why = unusable(tool, pattern, url)
        if why then
            redisconn.log_error("ignoring a stored route: " .. why)
        else
            routes[#routes + 1] = pattern
            routes[#routes + 1] = url
        end
    end
    return routes
end

-- Whether redirects are served (path mode with a `canonical_domain`): only then is each tool's
-- `redirect:<tool>` read with its routes (a field, whatever its value, redirects, as in the original).
local function redirects_served()
    local conf = settings.current
    return conf.canonical_domain ~= "" and conf.routing == "path"
end

-- One command's reply out of a pipeline: false for an error reply (e.g. WRONGTYPE: this key is
-- unusable, Redis is fine), which is logged.
local function reply_of(reply, command)
    if type(reply) == "table" and reply[1] == false then
        redisconn.log_error(command .. " answered " .. tostring(reply[2]))
        return false
    end
    return reply
end

-- The routes of each of `tools` as Redis holds them, in one round trip (a pipeline; the refresh
-- timer re-reads up to REFRESH_BATCH tools at once, so thousands of tools read into the cache
-- together cost tens of round trips when they age together, not thousands): {pattern1, url1, ...}
-- per tool, in the order of `tools`, with `redirect` for a tool that redirects. nil and an error
-- when Redis did not answer.
local function fetch_all(tools)
    local red, err = redisconn.connect()
    if not red then
        return nil, err
    end
    local redirects = redirects_served()
    red:init_pipeline()
    for _, tool in ipairs(tools) do
        red:hgetall(schema.PREFIX .. tool)
        if redirects then
            red:hlen(schema.REDIRECT .. tool)
        end
    end
    local replies
    replies, err = red:commit_pipeline()
    if not replies then
        red:close()
        local more = #tools > 1 and (" (and " .. #tools - 1 .. " more tools)") or ""
        return nil, "HGETALL " .. schema.PREFIX .. tools[1] .. more .. ": " .. tostring(err)
    end
    redisconn.release(red)
    local step = redirects and 2 or 1
    local all = {}
    for i, tool in ipairs(tools) do
        local flat = reply_of(replies[(i - 1) * step + 1], "HGETALL " .. schema.PREFIX .. tool)
        local routes = flat and build(tool, flat) or {}
        if flat and redirects then
            local fields = reply_of(replies[i * 2], "HLEN " .. schema.REDIRECT .. tool)
            routes.redirect = fields and fields > 0 or nil
        end
        all[i] = routes
    end
    return all
end

-- The entry is the route list itself, stamped with the invalidation log's head (`token`) and the
-- time it was read, with its shared dict text (`text`) once it has one, and `stale` once its tool
-- changed; `redirect` is true for a tool that answers with its canonical redirect.
local function stamp(routes, token, at)
    routes.token, routes.at = token, at
    return routes
end

-- The route list is copied by a loop: `unpack` fails past ~8,000 values ("too many results").
local function encode(entry)
    local routes = {}
    for i = 1, #entry do
        routes[i] = entry[i]
    end
    return cjson.encode({ token = entry.token, at = entry.at, routes = routes, redirect = entry.redirect })
end

local function decode(text)
    local data = cjson.decode(text)
    if type(data) ~= "table" or type(data.routes) ~= "table" then
        return nil
    end
    local entry = stamp(data.routes, data.token, data.at)
    entry.text = text
    entry.redirect = data.redirect == true or nil
    return entry
end

local function fresh(entry, now, head)
    return head ~= nil and not entry.stale and now - entry.at < settings.current.cache_ttl
end

local function remember(tool, entry)
    keep(tool, entry)
    entry.text = encode(entry)
    -- `set` evicts the least recently used tools when the dict is full, which is what we want.
    shared:set(tool, entry.text)
end

-- How the slow path's lookups went, per worker, since metrics.lua last took them: from a fresh
-- entry (hit), from Redis (miss; the refresh timer's re-reads count here too), stale (Redis
-- failing), unavailable (unknown and Redis failing).
_M.lookups = { hit = 0, miss = 0, stale = 0, unavailable = 0 }
local lookups = _M.lookups

-- `tools`' routes read from Redis now (one round trip), cached and counted as misses; nil and an
-- error (Redis marked down) when Redis does not answer. reread(): one tool's.
local function reread_all(tools, now)
    -- The head before asking Redis: every change published up to it is in what Redis answers.
    local head = changes.head()
    local all, err = fetch_all(tools)
    if not all then
        redisconn.mark_down(err)
        return nil, err
    end
    for i, routes in ipairs(all) do
        lookups.miss = lookups.miss + 1
        -- A change published while Redis answered may or may not be in the answer: use it this
        -- once, re-read next time. (No yield from here to remember(): the log walk cannot slip in.)
        routes.stale = changes.changed_since(tools[i], head)
        remember(tools[i], stamp(routes, head, now))
    end
    return all
end

local function reread(tool, now)
    local all, err = reread_all({ tool }, now)
    return all and all[1], err
end

-- The number of the last change this worker has applied (the invalidation log's head); nil until
-- the watcher first subscribed.
function _M.token()
    return current_head(ngx_now())
end

-- The entry of `tool` this worker or the shared dict holds, fresh or not (nil: none), and whether
-- it is fresh. Invalid names hold the empty route list: nothing to look up, now or ever.
local function cached_entry(tool, now, head)
    local entry = entries[tool]
    if entry and fresh(entry, now, head) then
        return entry, true
    end
    if not entry and not re_find(tool, TOOL_NAME, "jo") then
        return NO_ROUTES, true
    end
    local text = shared:get(tool)
    -- The text this worker's entry came from (interned: one pointer compare) decodes to that same
    -- stale entry: skip it, or a Redis outage longer than `cache_ttl` costs a JSON decode per request.
    local shared_entry = text and not (entry and entry.text == text) and decode(text)
    if shared_entry then
        -- Another worker read it: under which head, and did the tool change since?
        shared_entry.stale = changes.changed_since(tool, shared_entry.token)
        entry = shared_entry
        keep(tool, entry)
    end
    return entry, entry ~= nil and fresh(entry, now, head)
end

-- Tools whose entry outlived `cache_ttl` unchanged, for the refresh timer (`queued`: no tool twice),
-- which re-reads up to REFRESH_BATCH of them per round trip (a few hundred bytes of reply each).
local REFRESH_BATCH = 100
local refresh_queue, refresh_count, queued = {}, 0, {}

-- Whether the front may still serve `entry` (not fresh) while the timer re-reads it: only its age
-- made it so (the log is being followed and never named its tool), by less than another `cache_ttl`,
-- and Redis is there to re-read it from.
local function refreshable(entry, now, head)
    return head ~= nil
        and not entry.stale
        and now - entry.at < 2 * settings.current.cache_ttl
        and redisconn.available()
end

-- `tool`'s routes when they are known fresh without asking Redis (or only old, and queued for the
-- refresh timer); nil otherwise. For the balancer phase, where no network I/O is allowed.
function _M.cached(tool)
    local now = ngx_now()
    local head = current_head(now)
    local entry, is_fresh = cached_entry(tool, now, head)
    if is_fresh then
        return entry
    end
    if entry and refreshable(entry, now, head) then
        if not queued[tool] then
            queued[tool] = true
            refresh_count = refresh_count + 1
            refresh_queue[refresh_count] = tool
        end
        return entry
    end
    return nil
end

-- `tool`'s routes as {pattern1, url1, ...} in match order (possibly empty), and "stale" when
-- served despite a Redis failure; nil and an error when they are unknown and Redis cannot tell.
function _M.routes(tool)
    local now = ngx_now()
    local entry, is_fresh = cached_entry(tool, now, current_head(now))
    if is_fresh then
        lookups.hit = lookups.hit + 1
        return entry
    end
    if not redisconn.available() then
        if entry then
            lookups.stale = lookups.stale + 1
            return entry, "stale"
        end
        lookups.unavailable = lookups.unavailable + 1
        return nil, "route store unavailable"
    end
    local routes, err = reread(tool, now)
    if not routes then
        if entry then
            lookups.stale = lookups.stale + 1
            return entry, "stale"
        end
        lookups.unavailable = lookups.unavailable + 1
        return nil, err
    end
    return routes
end

-- The refresh timer: re-read every queued tool whose entry is still not fresh (another worker may
-- have re-read it into the shared dict meanwhile). A Redis failure stops the round: the tools left
-- are served by the slow path until Redis answers, and queued again by their next request.
function _M.refresh()
    local tools, n = refresh_queue, refresh_count
    refresh_queue, refresh_count, queued = {}, 0, {}
    local i = 1
    while i <= n do
        if not redisconn.available() then
            return
        end
        local now = ngx_now()
        local head = current_head(now)
        local batch = {}
        while i <= n and #batch < REFRESH_BATCH do
            local entry, is_fresh = cached_entry(tools[i], now, head)
            if entry and not is_fresh then
                batch[#batch + 1] = tools[i]
            end
            i = i + 1
        end
        if #batch > 0 and not reread_all(batch, now) then
            return
        end
    end
end

-- Every worker refreshes its own old entries, ten times per `cache_ttl` (at most once a second).
function _M.start()
    timers.every(min(1, settings.current.cache_ttl / 10), "refresh cached routes", _M.refresh)
end

-- Cache `entry` (a table stamped with `token` and `at`, with `stale` set as changes.changed_since()
-- says for `name`) under `name`, a name no tool can have, for another module that caches what
-- Redis holds under the same invalidation as routes (blocks.lua). This worker marks it stale when
-- the invalidation log names `name` or every tool; `entry` replaces what was pinned under `name`.
function _M.pin(name, entry)
    pinned[name] = entry
end

-- Whether `entry` (pinned, or stamped like a route entry) is fresh: its name did not change since it
-- was read, and it is younger than `cache_ttl`. Applies the invalidation log first.
function _M.is_fresh(entry)
    local now = ngx_now()
    return fresh(entry, now, current_head(now))
end

-- metrics.lua's request counters for `tool`, kept on its entry in this worker's table (made on
-- first use: {1xx, 2xx, 3xx, 4xx, 5xx, listed = false, tool = name}); nil for a tool this worker
-- does not know to have routes of its own (no I/O: its own table only). On the entry, not in a
-- table of metrics.lua's own: the front's balancer asks for them right after its own lookup of the
-- entry, so they are found where it has just looked, not in a second table of thousands of tools.
-- A new entry (the tool re-read) starts new counters; metrics.lua still holds and flushes the old ones.
function _M.counts_of(tool)
    local entry = entries[tool]
    if entry == nil or entry[1] == nil then
        return nil
    end
    local counts = entry.counts
    if not counts then
        counts = { 0, 0, 0, 0, 0, listed = false, tool = tool }
        entry.counts = counts
    end
    return counts
end

return _M
