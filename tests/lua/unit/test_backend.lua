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
    eq(reason("ftp://10.0.0.5:80"), "backend ftp://10.0.0.5:80 is not http[s]://<IP or host name>:<port>",
        "scheme")
    eq(reason("http://grid-1205:80"), "backend http://grid-1205:80: host is not an IP address nor a DNS name"
        .. " with a domain", "name without a domain")
    eq(reason("http://10.0.0.5:70000"), "backend http://10.0.0.5:70000 has no valid port", "port")
    eq(reason("http://300.0.0.5:80"), "backend http://300.0.0.5:80: host is not an IP address", "IPv4")
    eq(reason("http://[1::2::3]:80"), "backend http://[1::2::3]:80: host is not an IP address", "IPv6")
    eq(reason("http://239.1.2.3:80"), "backend http://239.1.2.3:80: host is a multicast address", "multicast")
    eq(reason("http://[::]:80"), "backend http://[::]:80: host is an unspecified address (0.0.0.0/8, ::)",
        "::")
    eq(reason("http://169.254.169.254:80"), "backend http://169.254.169.254:80: host is a link-local address",
        "the metadata service")
    local broadcast = "http://255.255.255.255:80"
    eq(reason(broadcast), "backend " .. broadcast .. ": host is the broadcast address", "broadcast")
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

case("host names: lower case, at least two labels, no all-digit last label", function()
    local backend = require "urlproxy.backend"
    local url = "http://Tools-Webgrid-Lighttpd-1205.tools.eqiad.wmflabs:33555"
    local name = "tools-webgrid-lighttpd-1205.tools.eqiad.wmflabs"
    eq(backend.parse(url), { scheme = "http", name = name, port = 33555 }, "peer")
    for _, host in ipairs({ "localhost", "127.1", "a.b.", "a..b", "-a.org", "a-.org", "a_b.org" }) do
        check(not backend.parse("http://" .. host .. ":80"), host .. " accepted")
    end
end)

-- Why `url` is not usable in the fleet `overrides` configure (nil: it is).
local function refused(url, overrides)
    unit.configure(overrides)
    local peer, err = require("urlproxy.backend").usable(url)
    if peer then
        return nil
    end
    return err
end

case("loopback backends only where allow_loopback_backends says the tools run there", function()
    for _, url in ipairs({ "http://127.0.0.1:8000", "http://127.9.9.9:8000", "http://[::1]:8000",
                           "http://[::ffff:127.0.0.1]:8000" }) do
        local err = refused(url)
        check(err and err:find("is a loopback address", 1, true), url .. ": " .. tostring(err))
        eq(refused(url, { allow_loopback_backends = true }), nil, url .. " with loopback allowed")
    end
    eq(refused("http://10.0.0.5:8000"), nil, "an ordinary address")
end)

case("never a proxy's own address, nor its service ports there or on loopback", function()
    local six = "2001:0db8:0000:0000:0000:0000:0000:0010" -- as render spells IPv6: in full
    local fleet = { proxy_addresses = { "172.16.0.10", six, "proxy.example.org" } }
    fleet.proxy_ports = { 443, 6379 }
    for _, url in ipairs({ "http://172.16.0.10:8000", "https://172.16.0.10:443", "http://[2001:db8::10]:8000",
                           "http://[::ffff:172.16.0.10]:8000", "http://proxy.example.org:8000" }) do
        check(refused(url, fleet), url .. " accepted")
    end
    fleet.allow_loopback_backends = true
    eq(refused("http://127.0.0.1:8000", fleet), nil, "loopback on a tool's port where tools run on the proxy")
    local service = "backend %s: host is a proxy's service port"
    eq(refused("http://127.0.0.1:6379", fleet), service:format("http://127.0.0.1:6379"), "the proxy's Redis")
    eq(refused("http://[::1]:443", fleet), service:format("http://[::1]:443"), "its TLS port")
    eq(refused("http://10.0.0.5:6379", fleet), nil, "a service port elsewhere")
end)

case("a route another writer stored at a refused destination is skipped and logged", function()
    unit.configure({ proxy_ports = { 6379 }, allow_loopback_backends = true })
    unit.watching()
    unit.store("evil", { { ".*", "http://127.0.0.1:6379" }, { "^/meta", "http://169.254.169.254:80" } })
    eq(#require("urlproxy.routecache").routes("evil"), 0, "usable routes")
    check(#unit.shim.logged("ignoring a stored route") == 1, "one error line (rate-limited)")
end)
