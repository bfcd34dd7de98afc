-- resolver.lua: host-name backends, resolved off the request path (a scripted DNS stands in).
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

local A, AAAA = 1, 28
local GRID = "http://grid-1205.tools.example.org:33555"
local NAME = "grid-1205.tools.example.org"

local function record(address, ttl, kind)
    return { type = kind or A, address = address, ttl = ttl or 60 }
end

-- The front's peer for `uri` (the balancer phase: cached data only).
local function front(uri)
    ngx.var.request_uri, shim.peer = uri, nil
    require("urlproxy.balancer").route()
    return shim.peer
end

-- The slow path: access phase, then its balancer; the peer, or the status it ended with.
local function slow(uri)
    ngx.var.request_uri, ngx.var.urlproxy_backend, shim.exited, shim.peer = uri, "-", nil, nil
    require("urlproxy").access()
    if shim.exited then
        return shim.exited
    end
    require("urlproxy.balancer").balance()
    return shim.exited or shim.peer
end

local function grid_tool(url, tool)
    tool = tool or "grid"
    unit.watching()
    unit.store(tool, { { ".*", url or GRID } })
    require("urlproxy.routecache").routes(tool)
end

case("a name not resolved yet: the front hands over, the slow path asks DNS, the front routes", function()
    grid_tool()
    shim.dns.records[NAME] = { record("10.68.1.5") }
    eq(front("/grid/"), { host = "unix:/run/test/slow.sock" }, "front before any answer")
    eq(#shim.dns.queries, 0, "DNS queries from the front (no I/O there)")
    eq(slow("/grid/"), { host = "10.68.1.5", port = 33555 }, "slow path")
    eq(shim.dns.queries, { NAME .. " " .. A }, "DNS queries")
    eq(front("/grid/x"), { host = "10.68.1.5", port = 33555 }, "front once resolved")
    eq(#shim.dns.queries, 1, "DNS queries in all")
end)

case("an IPv6-only name is asked for AAAA after A, and handed over in brackets", function()
    grid_tool()
    shim.dns.records[NAME] = { record("2001:db8::5", 60, AAAA) }
    eq(slow("/grid/"), { host = "[2001:db8::5]", port = 33555 }, "slow path")
    eq(shim.dns.queries, { NAME .. " " .. A, NAME .. " " .. AAAA }, "DNS queries")
end)

case("worker 0 re-resolves names whose TTL ran out, and a changed record is followed", function()
    unit.configure({ resolver_min_ttl = 1 })
    grid_tool()
    shim.dns.records[NAME] = { record("10.68.1.5", 30) }
    slow("/grid/")
    local resolver = require "urlproxy.resolver"
    shim.dns.records[NAME] = { record("10.68.1.6", 30) }
    shim.clock = shim.clock + 29
    eq(resolver.refresh_due(), 0, "names due before the TTL ran out")
    eq(front("/grid/"), { host = "10.68.1.5", port = 33555 }, "front within the TTL")
    shim.clock = shim.clock + 1
    eq(resolver.refresh_due(), 1, "names due once it ran out")
    eq(front("/grid/"), { host = "10.68.1.6", port = 33555 }, "front after the change")
end)

case("the TTL is held between resolver_min_ttl and resolver_max_ttl", function()
    unit.configure({ resolver_min_ttl = 10, resolver_max_ttl = 100 })
    grid_tool()
    local resolver = require "urlproxy.resolver"
    shim.dns.records[NAME] = { record("10.68.1.5", 0) }
    slow("/grid/")
    shim.clock = shim.clock + 9.9
    eq(resolver.refresh_due(), 0, "due before resolver_min_ttl (TTL 0)")
    shim.clock = shim.clock + 0.1
    eq(resolver.refresh_due(), 1, "due at resolver_min_ttl")
    shim.dns.records[NAME] = { record("10.68.1.5", 86400) }
    shim.clock = shim.clock + 10
    resolver.refresh_due()
    shim.clock = shim.clock + 100
    eq(resolver.refresh_due(), 1, "due at resolver_max_ttl (TTL one day)")
end)

case("while DNS fails the last good address is kept, asked for again after resolver_min_ttl", function()
    unit.configure({ resolver_min_ttl = 2 })
    grid_tool()
    local resolver = require "urlproxy.resolver"
    shim.dns.records[NAME] = { record("10.68.1.5", 5) }
    slow("/grid/")
    shim.dns.down = true
    for step = 1, 5 do
        shim.clock = shim.clock + 5
        eq(resolver.refresh_due(), 1, "names due at step " .. step)
        eq(front("/grid/"), { host = "10.68.1.5", port = 33555 }, "front at step " .. step)
        eq(slow("/grid/"), { host = "10.68.1.5", port = 33555 }, "slow path at step " .. step)
    end
    check(#shim.logged("cannot resolve " .. NAME) >= 1, "the failure is logged")
    check(shim.logged("keeping 10.68.1.5")[1], "the log says what is kept")
    shim.dns.records[NAME] = "servfail"
    shim.dns.down = false
    shim.clock = shim.clock + 5
    resolver.refresh_due()
    eq(front("/grid/"), { host = "10.68.1.5", port = 33555 }, "front after a SERVFAIL")
end)

case("a name DNS says does not exist loses its address: its requests get 502", function()
    unit.configure({ resolver_min_ttl = 1 })
    grid_tool()
    shim.dns.records[NAME] = { record("10.68.1.5", 5) }
    slow("/grid/")
    shim.dns.records[NAME] = nil
    shim.clock = shim.clock + 5
    require("urlproxy.resolver").refresh_due()
    eq(front("/grid/"), { host = "unix:/run/test/slow.sock" }, "front")
    eq(slow("/grid/"), 502, "slow path")
    check(shim.logged(NAME .. " does not exist")[1], "logged")
end)

case("a name never resolved while DNS is down: 502, and DNS is not asked per request", function()
    grid_tool()
    shim.dns.down = true
    eq(slow("/grid/"), 502, "first request")
    eq(slow("/grid/"), 502, "second request")
    eq(#shim.dns.queries, 1, "DNS queries")
end)

case("the destination rule applies to what a name resolves to", function()
    grid_tool()
    shim.dns.records[NAME] = { record("169.254.169.254") }
    eq(slow("/grid/"), 502, "link-local")
    check(shim.logged("resolves to 169.254.169.254, which is a link-local address")[1], "logged")
    shim.dns.records["loop.tools.example.org"] = { record("127.0.0.1") }
    grid_tool("http://loop.tools.example.org:8000", "loop")
    eq(slow("/loop/"), 502, "loopback where tools do not run on the proxy")
end)

case("a name resolving to loopback where allowed: never on a proxy's service port", function()
    unit.configure({ allow_loopback_backends = true, proxy_ports = { 6379 } })
    shim.dns.records[NAME] = { record("127.0.0.1") }
    grid_tool("http://grid-1205.tools.example.org:8000")
    eq(slow("/grid/"), { host = "127.0.0.1", port = 8000 }, "a tool's port")
    grid_tool("http://grid-1205.tools.example.org:6379", "redis")
    eq(front("/redis/"), { host = "unix:/run/test/slow.sock" }, "front on Redis' port")
    eq(slow("/redis/"), 502, "slow path on Redis' port")
end)

case("only worker 0 runs the refresher, re-armed every second", function()
    local resolver = require "urlproxy.resolver"
    resolver.start()
    eq(#shim.timers, 1, "timers armed")
    eq(shim.timers[1].delay, 1, "interval")
    shim.fire_timers()
    eq(#shim.timers, 1, "re-armed")
    ngx.worker.id = function()
        return 1
    end
    shim.timers = {}
    resolver.start()
    eq(#shim.timers, 0, "timers armed in worker 1")
end)

case("nameservers: the resolver setting as nginx's directive spells them, else /etc/resolv.conf's", function()
    local resolver = require "urlproxy.resolver"
    eq(resolver.nameservers("10.0.0.2 10.0.0.3:5353 [2001:db8::2]:53 [::1]"),
        { { "10.0.0.2", 53 }, { "10.0.0.3", 5353 }, { "[2001:db8::2]", 53 }, { "[::1]", 53 } }, "setting")
    local path = os.tmpname()
    local file = assert(io.open(path, "w"))
    file:write("# comment\nsearch example.org\nnameserver 10.1.1.1\n")
    file:write("nameserver fe80::1%eth0\nnameserver ::1\n")
    file:close()
    eq(resolver.nameservers("", path), { { "10.1.1.1", 53 }, { "[::1]", 53 } }, "resolv.conf")
    os.remove(path)
    eq(resolver.nameservers("", "/nonexistent/resolv.conf"), { { "127.0.0.1", 53 } }, "no resolv.conf")
end)

case("queries go to the configured nameservers", function()
    unit.configure({ resolver = "127.0.0.1:5353" })
    grid_tool()
    shim.dns.records[NAME] = { record("10.68.1.5") }
    slow("/grid/")
    eq(shim.dns.servers, { { "127.0.0.1", 5353 } }, "nameservers")
end)
