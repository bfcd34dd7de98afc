-- backend.lua: stored backend URLs as peers (the grammar's pinned cases are in test_schema.lua).
local unit = require "unit"
local case, eq, check = unit.case, unit.eq, unit.check

local function reason(url)
    local peer, err = require("urlproxy.backend").parse(url)
    check(not peer, tostring(url) .. " accepted")
    return err
end

case("a peer is what set_current_peer takes: IPv6 in brackets, the port as a number", function()
    local backend = require "urlproxy.backend"
    eq(backend.parse("http://10.0.0.5:41234"), { scheme = "http", host = "10.0.0.5", port = 41234 }, "IPv4")
    local six = { scheme = "https", host = "[2001:db8::5]", port = 8443 }
    eq(backend.parse("https://[2001:db8::5]:8443"), six, "IPv6")
    eq(backend.parse("http://[::ffff:1.2.3.4]:80").host, "[::ffff:1.2.3.4]", "IPv6 with a dotted quad")
end)

case("a refusal says what is wrong with the URL", function()
    eq(reason(nil), "backend is not a string", "nil")
    eq(reason("http://example.org:80"), "backend http://example.org:80 is not http[s]://<IP>:<port>", "name")
    eq(reason("http://10.0.0.5:70000"), "backend http://10.0.0.5:70000 has no valid port", "port")
    eq(reason("http://300.0.0.5:80"), "backend http://300.0.0.5:80: host is not an IP address", "IPv4")
    eq(reason("http://[1::2::3]:80"), "backend http://[1::2::3]:80: host is not an IP address", "IPv6")
    eq(reason("http://239.1.2.3:80"), "backend http://239.1.2.3:80: host is a multicast address", "multicast")
    eq(reason("http://[::]:80"), "backend http://[::]:80: host is the unspecified address", "unspecified")
end)

case("IPv6 forms: at most one ::, eight groups in all, a dotted quad only as the last two", function()
    local backend = require "urlproxy.backend"
    local valid = { "1::", "::1", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "a:b:c:d:e:f:1.2.3.4", "::1.2.3.4" }
    for _, address in ipairs(valid) do
        check(backend.parse("http://[" .. address .. "]:80"), address .. " refused")
    end
    local invalid = { "1:2:3:4:5:6:7", "1::2:3:4:5:6:7:8", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:", "1.2.3.4::" }
    for _, address in ipairs(invalid) do
        check(not backend.parse("http://[" .. address .. "]:80"), address .. " accepted")
    end
end)
