-- Canonical redirects: a tool with `redirect:<tool>` answers with its canonical address (path mode,
-- with canonical_domain set); nowhere else, and never through the admin fallback.
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

local HELLO = "http://10.0.0.1:8000"
local DOMAIN = "toolforge.example"

-- `tool` registered canonical: its route, and the redirect registerCanonical records beside it.
local function canonical(tool)
    unit.store(tool, { { ".*", HELLO } })
    shim.redis.hashes["redirect:" .. tool] = { { ".*", tool .. ".toolforge.org" } }
end

-- The slow path's answer to `method` `request_uri`: "<status> <location>" for a redirect, else
-- the backend it chose (or "<status> <why>").
local function slow(request_uri, method)
    ngx.var.request_uri, ngx.var.request_method = request_uri, method or "GET"
    ngx.var.uri = request_uri:match("^[^?]*")
    ngx.var.host, ngx.var.urlproxy_backend, ngx.var.urlproxy_tool = "proxy.example.org", "-", "-"
    shim.exited, shim.redirected = nil, nil
    require("urlproxy").access()
    if shim.redirected then
        return shim.redirected.status .. " " .. shim.redirected.url
    end
    if shim.exited then
        return shim.exited .. " " .. ngx.var.urlproxy_backend
    end
    return ngx.var.urlproxy_backend
end

-- The Redis commands about routes and redirects (the slow path reads the block lists beside them).
local function route_calls()
    local calls = {}
    for _, call in ipairs(shim.redis.calls) do
        if not call:find("toolforgectl:block:", 1, true) then
            calls[#calls + 1] = call
        end
    end
    return calls
end

case("a redirecting tool answers 301 to https://<tool>.<canonical_domain> with path and query", function()
    unit.configure({ canonical_domain = DOMAIN })
    unit.watching()
    canonical("hello")
    eq(slow("/hello/a/b%20c?x=1&y=%2F"), "301 https://hello.toolforge.example/a/b%20c?x=1&y=%2F", "answer")
    eq(ngx.var.urlproxy_backend, "redirect", "chosen, for the access log")
    eq(ngx.var.urlproxy_tool, "hello", "tool, for the access log")
    eq(slow("/hello"), "301 https://hello.toolforge.example/", "answer without a path")
    eq(slow("/hello?x=1"), "301 https://hello.toolforge.example/?x=1", "answer with only a query")
    eq(slow("/hello/"), "301 https://hello.toolforge.example/", "answer for the tool's root")
end)

case("methods other than GET and HEAD get 308, which keeps the method and body", function()
    unit.configure({ canonical_domain = DOMAIN })
    unit.watching()
    canonical("hello")
    eq(slow("/hello/form", "HEAD"), "301 https://hello.toolforge.example/form", "answer to HEAD")
    eq(slow("/hello/form", "POST"), "308 https://hello.toolforge.example/form", "answer to POST")
    eq(slow("/hello/form", "PUT"), "308 https://hello.toolforge.example/form", "answer to PUT")
end)

case("the host comes from canonical_domain, not from the stored value (as the original)", function()
    unit.configure({ canonical_domain = DOMAIN })
    unit.watching()
    unit.store("hello", { { ".*", HELLO } })
    shim.redis.hashes["redirect:hello"] = { { ".*", "evil.example.com/x" } }
    eq(slow("/hello/"), "301 https://hello.toolforge.example/", "answer")
end)

case("the front hands a redirecting tool to the slow path, even when cached", function()
    unit.configure({ canonical_domain = DOMAIN })
    unit.watching()
    canonical("hello")
    slow("/hello/")
    ngx.var.uri, ngx.var.urlproxy_tool = "/hello/", "-"
    eq(require("urlproxy").fast(), nil, "front's decision")
    eq(#route_calls(), 2, "Redis commands (HGETALL and HLEN, once)")
end)

case("without canonical_domain, redirect keys are not even read: the tool is proxied", function()
    unit.watching()
    canonical("hello")
    eq(slow("/hello/x"), HELLO, "backend")
    eq(route_calls(), { "HGETALL prefix:hello" }, "Redis commands")
end)

case("host mode ignores redirect keys: the request is on a host of the tool already", function()
    unit.configure({ canonical_domain = DOMAIN, routing = "host" })
    unit.watching()
    canonical("hello")
    ngx.var.host = "hello.toolforge.example"
    ngx.var.request_uri, ngx.var.uri, ngx.var.request_method = "/x", "/x", "GET"
    require("urlproxy").access()
    eq({ shim.redirected, ngx.var.urlproxy_backend }, { nil, HELLO }, "redirect and backend")
end)

case("admin's redirect key does not send unknown tools to admin's canonical host", function()
    unit.configure({ canonical_domain = DOMAIN })
    unit.watching()
    canonical("admin")
    eq(slow("/nobody/x"), HELLO, "backend of an unknown tool (admin's route)")
end)

case("a tool with a redirect and no routes redirects too (only the key's presence counts)", function()
    unit.configure({ canonical_domain = DOMAIN })
    unit.watching()
    shim.redis.hashes["redirect:gone"] = { { ".*", "gone.toolforge.org" } }
    eq(slow("/gone/x"), "301 https://gone.toolforge.example/x", "answer")
end)

case("the redirect flag travels through the shared dict to other workers", function()
    unit.configure({ canonical_domain = DOMAIN })
    unit.watching()
    canonical("hello")
    slow("/hello/")
    for name in pairs(package.loaded) do
        if name == "urlproxy" or name:sub(1, 9) == "urlproxy." then
            package.loaded[name] = nil
        end
    end
    unit.configure({ canonical_domain = DOMAIN })
    check(require("urlproxy.routecache").cached("hello").redirect, "the other worker's entry redirects")
    eq(#route_calls(), 2, "Redis commands")
end)

case("a redirect key of the wrong type is logged and ignored; Redis is not marked down", function()
    unit.configure({ canonical_domain = DOMAIN })
    unit.watching()
    unit.store("hello", { { ".*", HELLO } })
    shim.redis.wrongtype["redirect:hello"] = true
    eq(slow("/hello/"), HELLO, "backend")
    eq(#shim.logged("HLEN redirect:hello answered WRONGTYPE"), 1, "log lines")
    check(require("urlproxy.redisconn").available(), "Redis still available")
end)
