-- balancer.lua: the peer nginx connects to, on the front and on the slow path.
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

-- The front's peer for `uri`, once the block lists are known (the slow path's first request reads them).
local function route(uri)
    require("urlproxy.blocks").load()
    ngx.var.request_uri, ngx.var.urlproxy_front_log = uri, nil
    shim.peer = nil
    require("urlproxy.balancer").route()
    return shim.peer
end

case("the front connects to the backend of a cached http route", function()
    unit.watching()
    unit.store("hello", { { ".*", "http://10.0.0.1:8000" } })
    require("urlproxy.routecache").routes("hello")
    eq(route("/hello/"), { host = "10.0.0.1", port = 8000 }, "peer")
    eq(ngx.var.urlproxy_front_log, nil, "the front logs and counts it (the template's map: 1)")
end)

case("whatever the front cannot route goes to the slow path's unix socket", function()
    unit.configure({ slow_socket = "/run/x/slow.sock" })
    unit.watching()
    eq(route("/not-cached/"), { host = "unix:/run/x/slow.sock" }, "peer")
    eq(ngx.var.urlproxy_front_log, "0", "the slow path's server logs and counts it, not the front")
end)

case("IPv6 backends are handed over in brackets", function()
    unit.watching()
    unit.store("six", { { ".*", "http://[2001:db8::1]:8000" } })
    require("urlproxy.routecache").routes("six")
    eq(route("/six/"), { host = "[2001:db8::1]", port = 8000 }, "peer")
end)

case("parsed peers stay right when the per-worker table of peer_cache_size URLs is emptied", function()
    unit.configure({ peer_cache_size = 2 })
    unit.watching()
    local routecache = require "urlproxy.routecache"
    for i = 1, 5 do
        unit.store("t" .. i, { { ".*", "http://10.0.0." .. i .. ":80" } })
        routecache.routes("t" .. i)
    end
    for round = 1, 2 do
        for i = 1, 5 do
            local what = "peer of t" .. i .. " in round " .. round
            eq(route("/t" .. i .. "/"), { host = "10.0.0." .. i, port = 80 }, what)
        end
    end
end)

case("the slow path connects to the backend urlproxy.lua chose", function()
    ngx.var.urlproxy_backend = "https://10.0.0.3:8443"
    require("urlproxy.balancer").balance()
    eq(shim.peer, { host = "10.0.0.3", port = 8443 }, "peer")
end)

case("the slow path reached without a usable backend answers 500 and says why", function()
    ngx.var.urlproxy_backend = "none"
    require("urlproxy.balancer").balance()
    eq(shim.exited, 500, "status")
    check(#shim.logged("balancer reached without a usable backend", ngx.ERR) == 1, "error line")
end)

case("client_ip hidden: the request to the slow path is rebuilt with the client's address", function()
    unit.watching()
    ngx.var.remote_addr = "192.0.2.7"
    route("/not-cached/")
    eq(shim.recreated, { client = "192.0.2.7" }, "rebuilt request")
end)

case("client_ip hidden: a tool's backend gets a request without it, unless the tool is listed", function()
    unit.configure({ client_ip_forwarded_tools = { "listed" } })
    unit.watching()
    ngx.var.remote_addr = "192.0.2.7"
    local routecache = require "urlproxy.routecache"
    unit.store("hello", { { ".*", "http://10.0.0.1:8000" } })
    unit.store("listed", { { ".*", "http://10.0.0.2:8000" } })
    routecache.routes("hello")
    routecache.routes("listed")
    eq(route("/hello/"), { host = "10.0.0.1", port = 8000 }, "peer of hello")
    eq(shim.recreated, nil, "hello's request rebuilt")
    eq(route("/listed/"), { host = "10.0.0.2", port = 8000 }, "peer of listed")
    eq(shim.recreated, { client = "192.0.2.7" }, "listed's rebuilt request")
end)

case("client_ip forwarded: no request is rebuilt (the headers already carry the address)", function()
    unit.configure({ client_ip = "forwarded" })
    unit.watching()
    route("/not-cached/")
    eq(shim.recreated, nil, "rebuilt request")
end)
