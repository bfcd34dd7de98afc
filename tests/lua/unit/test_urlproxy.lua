-- urlproxy.lua: which tool a request names, which of its routes matches, and the fallbacks.
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

local HELLO = "http://10.0.0.1:8000"
local ECHO = "http://10.0.0.2:8000"
local ADMIN = "http://10.0.0.9:8000"
local SECURE = "https://10.0.0.3:8443"

-- The slow path's decision for a request of `uri`: the backend URL, or "503 <why>".
local function slow(uri, host)
    ngx.var.request_uri, ngx.var.host = uri, host or "proxy.example.org"
    ngx.var.urlproxy_backend, ngx.var.urlproxy_tool = "-", "-"
    shim.exited = nil
    require("urlproxy").access()
    if shim.exited then
        return shim.exited .. " " .. ngx.var.urlproxy_backend
    end
    return ngx.var.urlproxy_backend
end

-- The front's decision from cached routes: a backend URL, or nil for the slow path.
local function front(uri)
    ngx.var.request_uri, ngx.var.urlproxy_tool = uri, "-"
    return require("urlproxy").fast()
end

case("path mode: the first segment is the tool, its routes see the rest of the path", function()
    unit.watching()
    unit.store("multi", { { ".*", HELLO }, { "^/api/", ECHO } })
    eq(slow("/multi/api/v1"), ECHO, "backend of /multi/api/v1")
    eq(slow("/multi/index.html"), HELLO, "backend of /multi/index.html")
    eq(slow("/multi/x/api/"), HELLO, "backend of /multi/x/api/ (^ anchors at the rest)")
    eq(ngx.var.urlproxy_tool, "multi", "tool for the access log")
end)

case("patterns are unanchored: they match anywhere in the rest of the path", function()
    unit.watching()
    unit.store("tool", { { "/v1", ECHO } })
    eq(slow("/tool/api/v1/users"), ECHO, "backend")
end)

case("a tool without a trailing slash is matched against /", function()
    unit.watching()
    unit.store("bare", { { "^/$", ECHO } })
    eq(slow("/bare"), ECHO, "backend of /bare")
    eq(slow("/bare/"), ECHO, "backend of /bare/")
    eq(slow("/bare/more"), "503 none", "answer for /bare/more")
end)

case("on a miss, admin's routes are matched against the full URI", function()
    unit.watching()
    unit.store("hello", { { "^/only/", HELLO } })
    unit.store("admin", { { "^/hello/x$", ADMIN }, { "^/$", ECHO } })
    eq(slow("/hello/x"), ADMIN, "backend of a miss in a known tool")
    eq(slow("/x"), "503 none", "answer for /x (admin's ^/hello/x$ sees the full URI)")
    eq(slow("/"), ECHO, "backend of / (no tool at all)")
end)

case("then the default backend, then 503", function()
    unit.configure({ default_backend = "http://10.0.0.8:80" })
    unit.watching()
    eq(slow("/nobody/"), "http://10.0.0.8:80", "backend of an unknown tool")
    unit.configure({ default_backend = "" })
    package.loaded["urlproxy"] = nil -- the default backend is read once per worker
    eq(slow("/nobody/"), "503 none", "answer without a default backend")
end)

case("Redis down and nothing known about the tool: 503 unavailable", function()
    unit.watching()
    shim.redis.down = true
    eq(slow("/hello/"), "503 unavailable", "answer")
end)

case("host mode: the left-most Host label is the tool and its routes see the full URI", function()
    unit.configure({ routing = "host" })
    unit.watching()
    unit.store("echo", { { "^/echo/", HELLO }, { "^/any/", ECHO } })
    eq(slow("/any/path", "echo.tools.example.org"), ECHO, "backend")
    eq(ngx.var.urlproxy_tool, "echo", "tool")
    eq(slow("/echo/", "nobody.tools.example.org"), "503 none", "answer for an unknown label")
    eq(slow("/any/path", "echo"), ECHO, "backend when Host is a single label")
end)

case("maintenance: every request gets the maintenance 503, and the front routes nothing", function()
    unit.configure({ maintenance = true })
    unit.watching()
    unit.store("hello", { { ".*", HELLO } })
    eq(slow("/hello/"), "503 maintenance", "answer")
    eq(front("/hello/"), nil, "front's decision")
end)

case("the front routes a fresh plain http route itself and names the tool for the log", function()
    unit.watching()
    unit.store("hello", { { ".*", HELLO } })
    eq(front("/hello/page"), nil, "front's decision before the tool is cached")
    slow("/hello/page")
    eq(front("/hello/page"), HELLO, "front's decision once cached")
    eq(ngx.var.urlproxy_tool, "hello", "tool for the access log")
end)

case("https backends always go through the slow path, which proxies them over TLS", function()
    unit.watching()
    unit.store("secure", { { ".*", SECURE } })
    eq(slow("/secure/"), SECURE, "backend")
    eq(shim.exec, "@urlproxy_tls", "location")
    ngx.var.urlproxy_upgrade = "websocket" -- the template's map, for `Upgrade: websocket`
    slow("/secure/socket")
    ngx.var.urlproxy_upgrade = ""
    eq(shim.exec, "@urlproxy_tls_websocket", "a WebSocket keeps its long timeouts over TLS")
    eq(front("/secure/"), nil, "front's decision")
end)

case("the front hands stale and unknown routes to the slow path", function()
    unit.watching()
    unit.store("hello", { { ".*", HELLO } })
    slow("/hello/")
    local asked = #shim.redis.calls
    unit.changed("hello")
    shim.clock = shim.clock + 0.001
    eq(front("/hello/"), nil, "front's decision after a write")
    eq(front("/nobody/"), nil, "front's decision for an unknown tool")
    check(#shim.redis.calls == asked, "the front asked Redis nothing")
end)

case("a route past the regex match limit is skipped and logged; the next route still matches", function()
    unit.watching()
    unit.store("slow", { { "^/(a+)+$", ECHO }, { ".*", HELLO } })
    shim.match_errors["^/(a+)+$"] = "pcre_exec() failed: -8"
    eq(slow("/slow/aaaa!"), HELLO, "slow path's backend")
    eq(front("/slow/aaaa!"), HELLO, "front's backend")
    local logged = shim.logged("route ^/(a+)+$ of tool slow skipped: pcre_exec() failed: -8")
    eq(#logged, 1, "log lines (the second failure is within error_log_interval)")
    unit.store("slow", { { "^/(a+)+$", ECHO } })
    unit.changed("slow")
    shim.clock = shim.clock + 1
    eq(slow("/slow/aaaa!"), "503 none", "answer when no other route matches")
end)

case("the tool and the routed path are the path as the client sent it, not nginx's decoded $uri", function()
    unit.watching()
    unit.store("hello", { { ".*", HELLO } })
    unit.store("echo", { { ".*", ECHO } })
    -- nginx's $uri would be /echo/x for the first three: echo would get hello's visitors' cookies.
    ngx.var.uri = "/echo/x"
    eq(slow("/hello/..%2fecho/x"), HELLO, "backend of /hello/..%2fecho/x")
    eq(slow("/hello/%2e%2e%2fecho/x"), HELLO, "backend of /hello/%2e%2e%2fecho/x")
    eq(slow("/hello/%2e%2e/echo/x"), HELLO, "backend of /hello/%2e%2e/echo/x")
    eq(slow("/nosuch/..%2fecho/x"), "503 none", "answer for /nosuch/..%2fecho/x")
    eq(slow("/%65cho/x"), "503 none", "answer for an encoded tool name")
    eq(slow("/hello?to=/echo/"), HELLO, "backend when the query names another tool")
    eq(slow("/echo"), ECHO, "backend of a bare tool name")
end)

case("routes are matched against the raw path without the query", function()
    unit.watching()
    unit.store("tool", { { "^/api/", ECHO }, { ".*", HELLO } })
    eq(slow("/tool/api/v1?x=1"), ECHO, "backend of /tool/api/v1?x=1")
    eq(slow("/tool/x?/api/"), HELLO, "backend when only the query holds /api/")
    eq(slow("/tool/%61pi/v1"), HELLO, "backend of an encoded /api/ (the tool sees it encoded too)")
end)

case("client_ip_forwarded_tools: only the listed tools' own routes may see the client's address", function()
    unit.configure({ client_ip_forwarded_tools = { "hello" } })
    unit.watching()
    unit.store("hello", { { "^/app/", HELLO } })
    unit.store("echo", { { ".*", ECHO } })
    unit.store("admin", { { ".*", ADMIN } })
    ngx.var.remote_addr = "192.0.2.7"
    ngx.var.urlproxy_client = nil
    eq(slow("/hello/app/"), HELLO, "backend of hello")
    eq(ngx.var.urlproxy_client, "192.0.2.7", "client address for hello")
    ngx.var.urlproxy_client = nil
    eq(slow("/hello/other"), ADMIN, "backend of a miss in hello")
    eq(ngx.var.urlproxy_client, nil, "client address for admin serving hello's miss")
    eq(slow("/echo/"), ECHO, "backend of echo")
    eq(ngx.var.urlproxy_client, nil, "client address for echo")
    local url, reveal = front("/hello/app/")
    eq({ url, reveal }, { HELLO, true }, "front's decision for hello")
    url, reveal = front("/echo/")
    eq({ url, reveal }, { ECHO, false }, "front's decision for echo")
end)

case("client_ip forwarded: the template gives every tool the address, the Lua adds nothing", function()
    unit.configure({ client_ip = "forwarded" })
    unit.watching()
    unit.store("hello", { { ".*", HELLO } })
    slow("/hello/")
    local url, reveal = front("/hello/")
    eq({ url, reveal }, { HELLO, false }, "front's decision")
end)
