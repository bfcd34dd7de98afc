-- The data plane's Prometheus metrics: `/metrics` on the internal port.
--
-- Counting is cheap on purpose (the hot path's budget is a few percent): each worker adds to plain
-- Lua tables, in the log phase (status classes, per tool, upstream errors) and where the routing
-- decision is made (fast or slow path, cache lookups, blocks), and a timer adds those counts to
-- the shared counters in the metrics dict every `metrics_flush_ms`: so every worker adds to the
-- same counters, with one shared-dict write per counter and flush instead of one per request.
-- A scrape first flushes its own worker; the others' counts are at most one flush interval old.
--
-- Each request is counted once: by the front when it routed it (or answered it itself), else by
-- the slow path's server, which answered it. Per-tool series exist only for tools with routes of
-- their own (so requests for made-up names cannot grow them), and for at most `metrics_tools`
-- tools; the counts of any further tool go to tool="_other" (no tool name has an underscore).
local rawrequest = require "urlproxy.rawrequest"
local redisconn = require "urlproxy.redisconn"
local routecache = require "urlproxy.routecache"
local settings = require "urlproxy.settings"
local shdict = require "urlproxy.shdict"
local timers = require "urlproxy.timers"

local _M = {}

local ngx_var = ngx.var
local ngx_now = ngx.now
local floor = math.floor
local byte = string.byte
local sub = string.sub
local concat = table.concat

local DASH = byte("-")
local CLASSES = { "1xx", "2xx", "3xx", "4xx", "5xx" }
local OTHER = "_other"

-- What /metrics shows, in this order: name, type, help, and for counters with a fixed label set,
-- the label and its values (shown as 0 until counted, so that rate() works from the start).
local FAMILIES = {
    {
        name = "urlproxy_requests_total",
        help = "Requests answered on the https port (and by the catch-all server), by status class.",
        label = "class",
        values = CLASSES,
    },
    {
        name = "urlproxy_tool_requests_total",
        help = "Requests of each tool with routes, by status class (tool=\"_other\": tools past"
            .. " metrics_tools).",
    },
    {
        name = "urlproxy_routing_total",
        help = "Requests routed from the front's cache (fast) or handed to the slow path (slow).",
        label = "path",
        values = { "fast", "slow" },
    },
    {
        name = "urlproxy_route_cache_total",
        help = "Route lookups: hit (fresh cache; every fast-path request is one), miss (read from Redis),"
            .. " stale (served stale, Redis failing), unavailable (unknown, Redis failing).",
        label = "result",
        values = { "hit", "miss", "stale", "unavailable" },
    },
    {
        name = "urlproxy_upstream_errors_total",
        help = "nginx's own 502 (error: no connection or no valid answer) and 504 (timeout) answers.",
        label = "kind",
        values = { "error", "timeout" },
    },
    {
        name = "urlproxy_blocked_total",
        help = "Requests refused with 403 by a block list, or for having no User-Agent.",
        label = "kind",
        values = { "ip", "user-agent", "referer", "no-user-agent" },
    },
}

local function key(name, label, value)
    return name .. "{" .. label .. "=\"" .. value .. "\"}"
end

local REQUEST_KEYS = {}
for i, class in ipairs(CLASSES) do
    REQUEST_KEYS[i] = key(FAMILIES[1].name, "class", class)
end

-- Counted by this worker since its last flush.
local requests = { 0, 0, 0, 0, 0 }
-- Each tool's counts by class live on its route-cache entry (routecache.counts_of), zeroed by a
-- flush, not replaced (a new table only when the entry is re-read, not per tool and second);
-- `touched` lists the counts changed since the last flush, so a flush costs what changed, not
-- every tool this worker ever counted.
local touched, touched_count = {}, 0
-- tool -> its 5 series names (one per class), built once: a flush names no series anew.
local series_of, series_count = {}, 0
local paths = { fast = 0, slow = 0 }
local upstream = { error = 0, timeout = 0 }
local blocked = { ip = 0, ["user-agent"] = 0, referer = 0, ["no-user-agent"] = 0 }
local lookups = routecache.lookups -- counted by routecache.routes()
local counts_of = routecache.counts_of

-- Counted by the front's balancer itself (a field update, no call): requests it routed from its
-- cache (fast) or handed to the slow path (slow).
_M.paths = paths

-- A request refused by a block list (`kind` as blocks.match() names it).
function _M.blocked(kind)
    blocked[kind] = blocked[kind] + 1
end

-- What the front's balancer routed each request in flight to (rawrequest.id() -> the tool's counts,
-- false for a tool without routes of its own): the log phase takes it from here, not from the
-- $urlproxy_tool the access log shows, which would cost a variable lookup and a Lua string per
-- request. An entry lives from the balancer phase to the log phase, which nginx runs for every
-- request it frees (ngx_http_free_request), whatever ended it: the table holds the requests in flight.
local pending = {}

-- The front's balancer routed this request to `tool` (routes of its own or not).
function _M.routed(tool)
    if settings.current.metrics then -- else no log phase would take the entry (none is rendered)
        pending[rawrequest.id()] = counts_of(tool) or false
    end
end

-- Count a request answered with `status`, and for its tool when `counts` is the tool's.
local function count(counts, status)
    local class = floor(status / 100)
    if class < 1 or class > 5 then
        return
    end
    requests[class] = requests[class] + 1
    if counts then
        if not counts.listed then
            counts.listed = true
            touched_count = touched_count + 1
            touched[touched_count] = counts
        end
        counts[class] = counts[class] + 1
    end
    if status == 502 or status == 504 then
        -- nginx's own answer when the peer sent no response header ($upstream_header_time ends in
        -- "-"); a tool's own 502 or 504 is its business, not an upstream error.
        local header_time = ngx_var.upstream_header_time
        if not header_time or byte(header_time, -1) == DASH then
            local kind = status == 504 and "timeout" or "error"
            upstream[kind] = upstream[kind] + 1
        end
    end
end

-- The front's log phase. A request the front routed itself is in `pending`; one it handed to the
-- slow path ($urlproxy_front_log 0) was counted there, unless that server never answered; the rest
-- nginx answered itself (no tool).
function _M.log_front()
    local id = rawrequest.id()
    local counts = pending[id]
    if counts ~= nil then
        pending[id] = nil
        return count(counts, ngx.status)
    end
    if ngx_var.urlproxy_front_log == "0" then
        local header_time = ngx_var.upstream_header_time
        if header_time and byte(header_time, -1) ~= DASH then
            return
        end
    end
    count(nil, ngx.status)
end

-- The slow path's log phase: every request it answered (access() set $urlproxy_tool). A 499 here
-- means the front stopped waiting before any answer (its client left, or its own timeout fired
-- first): the front counts that request itself.
function _M.log_slow()
    local status = ngx.status
    if status ~= 499 then
        local tool = ngx_var.urlproxy_tool
        count(tool and counts_of(tool), status)
    end
end

local function add(dict, series, n)
    if n ~= 0 then
        local _, err = dict:incr(series, n, 0)
        if err then
            redisconn.log_error("cannot count " .. series .. ": " .. err)
        end
    end
end

-- Add `counts` (label value -> n) to the family `name`'s counters, and zero them.
local function add_all(dict, name, label, counts)
    for value, n in pairs(counts) do
        add(dict, key(name, label, value), n)
        counts[value] = 0
    end
end

-- The label `tool` gets: its own name while fewer than `metrics_tools` tools have one, else
-- _other. Decided once per tool (by whichever worker flushes it first) and kept in the dict.
local function label_of(dict, tool)
    local label_key = shdict.TOOL_LABEL .. tool
    local own = dict:get(label_key)
    if own == nil then
        local labelled = dict:incr(shdict.TOOLS_LABELLED, 1, 0)
        own = labelled ~= nil and labelled <= settings.current.metrics_tools
        if labelled and not own then
            dict:incr(shdict.TOOLS_LABELLED, -1, 0)
        end
        if not dict:add(label_key, own) then -- another worker decided first: its decision holds
            if own then
                dict:incr(shdict.TOOLS_LABELLED, -1, 0)
            end
            own = dict:get(label_key)
        end
    end
    return own and tool or OTHER
end

local function series_for(dict, tool)
    local series = series_of[tool]
    if not series then
        local label = label_of(dict, tool)
        series = {}
        for i, class in ipairs(CLASSES) do
            series[i] = FAMILIES[2].name .. "{tool=\"" .. label .. "\",class=\"" .. class .. "\"}"
        end
        series_of[tool] = series
        series_count = series_count + 1
    end
    return series
end

-- Add this worker's counts to the shared counters and start counting from zero.
function _M.flush()
    local dict = shdict.metrics()
    for i = 1, #CLASSES do
        add(dict, REQUEST_KEYS[i], requests[i])
        requests[i] = 0
    end
    for n = 1, touched_count do
        local counts = touched[n]
        touched[n] = nil -- not kept alive here once its entry is gone
        local series = series_for(dict, counts.tool)
        for i = 1, 5 do
            add(dict, series[i], counts[i])
            counts[i] = 0
        end
        counts.listed = false
    end
    touched_count = 0
    -- Bounded like the route cache: past `worker_cache_size` tools, name the series afresh (the
    -- labels stay decided in the dict).
    if series_count > settings.current.worker_cache_size then
        series_of, series_count = {}, 0
    end
    lookups.hit = lookups.hit + paths.fast
    add_all(dict, FAMILIES[3].name, "path", paths)
    add_all(dict, FAMILIES[4].name, "result", lookups)
    add_all(dict, FAMILIES[5].name, "kind", upstream)
    add_all(dict, FAMILIES[6].name, "kind", blocked)
end

-- Every worker flushes its own counts; once more when it exits, so a reload loses none.
function _M.start()
    timers.every(settings.current.metrics_flush_ms / 1000, "flush metrics", _M.flush, true)
end

local function number(value)
    return ("%.0f"):format(value)
end

local function gauge(out, name, help, value)
    out[#out + 1] = "# HELP " .. name .. " " .. help
    out[#out + 1] = "# TYPE " .. name .. " gauge"
    out[#out + 1] = name .. " " .. value
end

-- The Prometheus text exposition (format 0.0.4) of the shared counters and the gauges.
function _M.render()
    local dict = shdict.metrics()
    local by_family = {}
    for _, series in ipairs(dict:get_keys(0)) do
        local name = series:match("^([^{]+){")
        if name and sub(series, 1, #shdict.METRIC_PREFIX) == shdict.METRIC_PREFIX then
            local list = by_family[name] or {}
            by_family[name] = list
            list[series] = dict:get(series)
        end
    end
    local out = {}
    for _, family in ipairs(FAMILIES) do
        local values = by_family[family.name] or {}
        for _, value in ipairs(family.values or {}) do
            local series = key(family.name, family.label, value)
            values[series] = values[series] or 0
        end
        local names = {}
        for series in pairs(values) do
            names[#names + 1] = series
        end
        table.sort(names)
        out[#out + 1] = "# HELP " .. family.name .. " " .. family.help
        out[#out + 1] = "# TYPE " .. family.name .. " counter"
        for _, series in ipairs(names) do
            out[#out + 1] = series .. " " .. number(values[series])
        end
    end
    gauge(out, "urlproxy_redis_up", "1 while the route store answers, 0 while it is marked down.",
        redisconn.marked_down() and 0 or 1)
    local seen = shdict.state():get(shdict.WATCHER_EVENT_AT)
    gauge(out, "urlproxy_watcher_lag_seconds",
        "Seconds since the watcher last heard from Redis (an invalidation or the answer to its PING).",
        seen and ("%.3f"):format(math.max(0, ngx_now() - seen)) or "+Inf")
    gauge(out, "urlproxy_tools_labelled", "Tools with their own tool label (at most metrics_tools).",
        number(dict:get(shdict.TOOLS_LABELLED) or 0))
    return concat(out, "\n") .. "\n"
end

-- `/metrics`: this worker's counts first, so what a scrape shows includes its own requests.
function _M.serve()
    _M.flush()
    ngx.header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    ngx.print(_M.render())
end

return _M
