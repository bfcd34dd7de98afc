-- metrics.lua: what each request adds to which counter, the shared counters, and the exposition.
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

local SLOW = "unix:/run/test/slow.sock"

-- The value of `series` in the exposition after flushing this worker (nil: not shown).
local function value(series)
    local metrics = require "urlproxy.metrics"
    metrics.flush()
    local text = metrics.render()
    for line in text:gmatch("[^\n]+") do
        local name, number = line:match("^(%S+) (%S+)$")
        if name == series then
            return tonumber(number)
        end
    end
    return nil
end

-- A tool with routes in this worker's cache.
local function known(tool)
    unit.store(tool, { { ".*", "http://10.0.0.1:8000" } })
    require("urlproxy.routecache").routes(tool)
end

-- A new request: the front's balancer routed it to `tool` itself (nil or "": it did not).
local function routed(tool)
    shim.request = shim.request + 1
    if tool and tool ~= "" then
        require("urlproxy.metrics").routed(tool)
    end
end

-- The front's log phase for the request in flight; `upstream`: the peer and $upstream_header_time
-- (the balancer marks the slow path's requests).
local function logged(status, upstream)
    ngx.status = status
    ngx.var.urlproxy_front_log = upstream and upstream[1] == SLOW and "0" or nil
    ngx.var.upstream_header_time = upstream and upstream[2]
    require("urlproxy.metrics").log_front()
end

-- A request from the front's balancer to its log phase.
local function front(status, tool, upstream)
    routed(tool)
    logged(status, upstream)
end

local function slow(status, tool, header_time)
    ngx.status, ngx.var.urlproxy_tool, ngx.var.upstream_header_time = status, tool, header_time
    require("urlproxy.metrics").log_slow()
end

case("requests count by status class, in total and for each tool with routes", function()
    unit.watching()
    known("hello")
    front(200, "hello", { "10.0.0.1:8000", "0.001" })
    front(404, "hello", { "10.0.0.1:8000", "0.001" })
    slow(200, "hello", "0.002")
    slow(503, "nosuch")
    eq(value('urlproxy_requests_total{class="2xx"}'), 2, "2xx")
    eq(value('urlproxy_requests_total{class="4xx"}'), 1, "4xx")
    eq(value('urlproxy_requests_total{class="5xx"}'), 1, "5xx")
    eq(value('urlproxy_tool_requests_total{tool="hello",class="2xx"}'), 2, "hello 2xx")
    eq(value('urlproxy_tool_requests_total{tool="hello",class="4xx"}'), 1, "hello 4xx")
    eq(value('urlproxy_tool_requests_total{tool="nosuch",class="5xx"}'), nil, "a tool without routes")
end)

case("requests in flight at once count for their own tools, whatever order they finish in", function()
    unit.watching()
    known("hello")
    known("echo")
    routed("hello")
    local hello = shim.request
    routed("echo")
    logged(404, { "10.0.0.1:8000", "0.001" }) -- echo's request finishes first
    shim.request = hello
    logged(200, { "10.0.0.1:8000", "0.002" })
    eq(value('urlproxy_tool_requests_total{tool="hello",class="2xx"}'), 1, "hello 2xx")
    eq(value('urlproxy_tool_requests_total{tool="hello",class="4xx"}'), nil, "hello 4xx")
    eq(value('urlproxy_tool_requests_total{tool="echo",class="4xx"}'), 1, "echo 4xx")
    eq(value('urlproxy_tool_requests_total{tool="echo",class="2xx"}'), nil, "echo 2xx")
end)

case("the front does not count what the slow path answered, unless the slow path never answered", function()
    unit.watching()
    front(200, "", { SLOW, "0.003" })
    front(503, "", { SLOW, "0.001" })
    eq(value('urlproxy_requests_total{class="2xx"}'), 0, "counted by the slow path's server instead")
    front(502, "", { SLOW, "-" })
    eq(value('urlproxy_requests_total{class="5xx"}'), 1, "the hop itself failed")
    eq(value('urlproxy_upstream_errors_total{kind="error"}'), 1, "and that is an upstream error")
    front(429, nil, nil)
    eq(value('urlproxy_requests_total{class="4xx"}'), 1, "answered by the front before routing")
    slow(499, "hello", "-")
    eq(value('urlproxy_requests_total{class="4xx"}'), 1, "the slow hop's 499: the front gave up first")
end)

case("nginx's own 502/504 are upstream errors and timeouts; a tool's own 502 is not", function()
    unit.watching()
    known("hello")
    front(502, "hello", { "10.0.0.1:8000", "-" })
    slow(502, "hello", "0.010, -")
    front(504, "hello", { "10.0.0.1:8000", "-" })
    front(502, "hello", { "10.0.0.1:8000", "0.004" })
    eq(value('urlproxy_upstream_errors_total{kind="error"}'), 2, "errors")
    eq(value('urlproxy_upstream_errors_total{kind="timeout"}'), 1, "timeouts")
    eq(value('urlproxy_tool_requests_total{tool="hello",class="5xx"}'), 4, "hello's 5xx")
end)

case("a tool's counts survive its routes being re-read between two flushes", function()
    unit.watching()
    known("hello")
    front(200, "hello", { "10.0.0.1:8000", "0.001" })
    local routecache = require "urlproxy.routecache"
    local first = routecache.routes("hello")
    shim.clock = shim.clock + 61 -- past cache_ttl: the next lookup reads Redis, a new cache entry
    check(routecache.routes("hello") ~= first, "hello's entry was replaced")
    front(200, "hello", { "10.0.0.1:8000", "0.001" })
    front(404, "hello", { "10.0.0.1:8000", "0.001" })
    eq(value('urlproxy_tool_requests_total{tool="hello",class="2xx"}'), 2, "before and after the re-read")
    eq(value('urlproxy_tool_requests_total{tool="hello",class="4xx"}'), 1, "after it")
end)

case("past metrics_tools tools, further tools count as _other, for good", function()
    unit.configure({ metrics_tools = 2 })
    unit.watching()
    local function served(tool)
        known(tool)
        slow(200, tool, "0.001")
        require("urlproxy.metrics").flush()
    end
    for _, tool in ipairs({ "a", "b", "c", "d" }) do
        served(tool)
    end
    local function of(tool)
        return value(('urlproxy_tool_requests_total{tool="%s",class="2xx"}'):format(tool))
    end
    eq({ of("a"), of("b"), of("c"), of("d"), of("_other") }, { 1, 1, nil, nil, 2 }, "a, b, c, d, _other")
    eq(value("urlproxy_tools_labelled"), 2, "labelled gauge")
    served("d")
    served("a")
    eq({ of("a"), of("d"), of("_other") }, { 2, nil, 3 }, "a tool keeps what it was given")
end)

case("a flush adds each count once; counts made after it wait for the next", function()
    unit.watching()
    slow(200, nil)
    local metrics = require "urlproxy.metrics"
    metrics.flush()
    metrics.flush()
    eq(value('urlproxy_requests_total{class="2xx"}'), 1, "after two flushes")
    slow(200, nil)
    eq(shim.dicts.urlproxy_metrics:get('urlproxy_requests_total{class="2xx"}'), 1, "before the next flush")
    eq(value('urlproxy_requests_total{class="2xx"}'), 2, "after it")
end)

case("fast and slow path, and cache lookups: every fast-path request is a hit", function()
    unit.watching()
    unit.store("hello", { { ".*", "http://10.0.0.1:8000" } })
    local balancer = require "urlproxy.balancer"
    ngx.var.request_uri = "/hello/"
    balancer.route() -- nothing cached: slow path
    ngx.var.http_user_agent = "x"
    require("urlproxy").access() -- reads hello from Redis (a miss)
    balancer.route()
    balancer.route()
    eq(value('urlproxy_routing_total{path="slow"}'), 1, "slow")
    eq(value('urlproxy_routing_total{path="fast"}'), 2, "fast")
    eq(value('urlproxy_route_cache_total{result="miss"}'), 1, "misses")
    eq(value('urlproxy_route_cache_total{result="hit"}'), 2, "hits")
end)

case("a host-name backend the resolver has no address for yet counts as a slow-path request", function()
    unit.watching()
    unit.store("grid", { { ".*", "http://grid-1205.tools.example.org:33555" } })
    require("urlproxy.routecache").routes("grid")
    require("urlproxy.blocks").load()
    ngx.var.request_uri = "/grid/"
    require("urlproxy.balancer").route()
    eq(shim.peer, { host = SLOW }, "handed over")
    eq(value('urlproxy_routing_total{path="fast"}'), 0, "fast")
    eq(value('urlproxy_routing_total{path="slow"}'), 1, "slow")
end)

case("Redis up or down, and the watcher's lag since it last heard from Redis", function()
    eq(value("urlproxy_watcher_lag_seconds"), math.huge, "before the watcher ever reached Redis")
    shim.redis.reads_left = 1 -- subscribes, PINGs, reads the answer, then the worker exits
    require("urlproxy.watcher").start()
    shim.fire_timers()
    shim.clock = shim.clock + 0.25
    eq(value("urlproxy_watcher_lag_seconds"), 0.25, "lag")
    eq(value("urlproxy_redis_up"), 1, "up")
    require("urlproxy.redisconn").mark_down("a request's Redis call failed")
    shim.clock = shim.clock + 2
    eq(value("urlproxy_redis_up"), 0, "marked down")
    eq(value("urlproxy_watcher_lag_seconds"), 2.25, "lag grows while the watcher hears nothing")
end)

case("every worker flushes on a timer, and once more when it exits", function()
    unit.configure({ metrics_flush_ms = 500 })
    local metrics = require "urlproxy.metrics"
    metrics.start()
    eq({ #shim.timers, shim.timers[1].delay, shim.timers[1].every }, { 1, 0.5, true }, "the timer")
    slow(200, nil)
    shim.fire_timers()
    local dict = shim.dicts.urlproxy_metrics
    eq(dict:get('urlproxy_requests_total{class="2xx"}'), 1, "after a tick")
    slow(200, nil)
    shim.fire_timers(true)
    eq(dict:get('urlproxy_requests_total{class="2xx"}'), 2, "after the worker's exit")
end)

case("the exposition: HELP and TYPE for every family, fixed series shown as 0 from the start", function()
    local text = require("urlproxy.metrics").render()
    local families = { "urlproxy_requests_total", "urlproxy_routing_total", "urlproxy_route_cache_total",
        "urlproxy_upstream_errors_total", "urlproxy_blocked_total", "urlproxy_tool_requests_total" }
    for _, family in ipairs(families) do
        check(text:find("# TYPE " .. family .. " counter\n", 1, true), family .. " has its TYPE")
        check(text:find("# HELP " .. family .. " ", 1, true), family .. " has its HELP")
    end
    check(text:find('urlproxy_blocked_total{kind="no-user-agent"} 0\n', 1, true), "a zero series")
    check(text:sub(-1) == "\n", "ends with a newline")
end)
