-- The shared dicts every worker of one nginx reads and writes, and the name of every key in them.
--
-- One place for these names, so no two modules can disagree on a spelling or reuse a key for
-- something else. The dict names are also declared by templates/nginx/urlproxy.conf.j2
-- (`lua_shared_dict`), pinned with it by tests/fixtures/schema.json.
local _M = {
    -- tool name -> the JSON text of its cache entry (routecache.lua); nothing else lives here, so
    -- the dict's LRU eviction only ever drops tools' routes.
    ROUTES_DICT = "urlproxy_routes",
    -- The data plane's state, under the keys below.
    STATE_DICT = "urlproxy_state",
    -- host name -> its address, when to resolve it again, and whether it is near (resolver.lua);
    -- nothing else lives here, so the refresher can walk every key.
    DNS_DICT = "urlproxy_dns",

    -- The invalidation log (changes.lua, written by watcher.lua): CHANGES is the number of the last
    -- change published, CHANGE_NEXT the last number handed out; slot CHANGE_SLOT .. (n % changes.RING)
    -- holds "<n> <tool>" ("<n> *": every tool); CHANGED .. tool holds the number of that tool's last
    -- change (for cache_ttl seconds); ALL_CHANGED the number of the last change of every tool.
    CHANGES = "changes",
    CHANGE_NEXT = "change_next",
    CHANGE_SLOT = "change:",
    CHANGED = "changed:",
    ALL_CHANGED = "all_changed",
    -- How often every tool was made stale at once (the watcher (re)subscribed, or Redis was flushed).
    EPOCH = "epoch",
    -- The route store version (toolforgectl:routes:version) whose writes have all been applied.
    VERSION = "version",
    -- ngx.now() when the watcher last heard from Redis (an invalidation or the answer to its PING):
    -- now minus this is the watcher's lag (urlproxy_watcher_lag_seconds in /metrics).
    WATCHER_EVENT_AT = "watcher_event_at",
    -- While ngx.now() is below this, requests do not try Redis (redisconn.lua's back-off).
    DOWN_UNTIL = "down_until",
    -- Consecutive Redis failures: the back-off doubles with each.
    FAILURES = "failures",
    -- Exists while an urlproxy error line was written less than error_log_interval ago (any worker),
    -- and how many lines were suppressed since (redisconn.lua).
    LOG_GATE = "log_gate",
    LOG_SUPPRESSED = "log_suppressed",
    -- /list's last JSON answer and the change number it was built under (routelist.lua).
    LIST_BODY = "list_body",
    LIST_TOKEN = "list_token",
    -- The block lists as last read from Redis, as JSON with the invalidation log's head they were
    -- read under and when (blocks.lua).
    BLOCKS = "blocks",

    -- Counters every worker adds to (metrics.lua flushes its own into it about once a second).
    METRICS_DICT = "urlproxy_metrics",
    -- In METRICS_DICT, besides the counters (whose keys are their Prometheus series,
    -- `name{label="value"}`, and start with METRIC_PREFIX): whether a tool has its own label
    -- (TOOL_LABEL .. tool: true, or false past the cap) and how many tools were given one.
    METRIC_PREFIX = "urlproxy_",
    TOOL_LABEL = "label:",
    TOOLS_LABELLED = "tools_labelled",
}

-- The dicts themselves (nginx creates them before init_by_lua runs).
function _M.routes()
    return ngx.shared[_M.ROUTES_DICT]
end

function _M.state()
    return ngx.shared[_M.STATE_DICT]
end

function _M.metrics()
    return ngx.shared[_M.METRICS_DICT]
end

function _M.dns()
    return ngx.shared[_M.DNS_DICT]
end

return _M
