-- Baseline (b) of bench/dataplane.py: the original system's per-request lookup (urlproxy.lua, 2016),
-- kept only to measure against. One Redis round trip per request, then `proxy_pass $backend`.
local redis = require "nginx.redis"

local red = redis:new()
red:set_timeout(1000)
local ok, err = red:connect("127.0.0.1", tonumber(os.getenv("BENCH_REDIS_PORT")))
if not ok then
    ngx.log(ngx.ERR, "redis: ", err)
    return ngx.exit(503)
end

local m = ngx.re.match(ngx.var.uri, "^/([^/]*)(/.*)?$", "jo")
local prefix, rest = m[1], m[2] or "/"
local routes = red:hgetall("prefix:" .. prefix)
red:set_keepalive(10000, 100)
if routes and #routes > 0 then
    for i = 1, #routes, 2 do
        if ngx.re.match(rest, routes[i], "jo") then
            ngx.var.backend = routes[i + 1]
            return ngx.exit(ngx.OK)
        end
    end
end
return ngx.exit(503)
