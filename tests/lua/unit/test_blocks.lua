-- blocks.lua: which requests the block lists refuse, and how the lists are cached like routes.
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

-- What the watcher publishes when Redis says a block list key changed.
local function lists_changed()
    unit.changed(require("urlproxy.changes").BLOCKS)
end

-- $binary_remote_addr of a dotted quad or of an IPv6 address.
local function binary(address)
    return require("urlproxy.backend").address_bytes(address)
end

-- What blocks a request from `address` with these headers (nil: nothing), after loading the lists.
local function verdict(address, agent, referer)
    ngx.var.binary_remote_addr = binary(address)
    ngx.var.http_user_agent, ngx.var.http_referer = agent, referer
    local blocks = require "urlproxy.blocks"
    return blocks.match(blocks.load())
end

local function hkeys_sent()
    local sent = 0
    for _, call in ipairs(shim.redis.calls) do
        if call:sub(1, 5) == "HKEYS" then
            sent = sent + 1
        end
    end
    return sent
end

case("nothing blocked: the set is inactive and blocks nobody", function()
    unit.watching()
    eq(verdict("203.0.113.9", "curl/8", nil), nil, "verdict")
    check(not require("urlproxy.blocks").load().active, "an empty set is inactive (the front skips it)")
    eq(hkeys_sent(), 3, "one HKEYS per kind, in one pipeline")
end)

case("networks: an address, a /24, a /20 and an IPv6 /32 block what they contain, nothing else", function()
    unit.watching()
    unit.block("ip", { "203.0.113.9/32", "198.51.100.0/24", "192.0.16.0/20", "2001:db8::/32" })
    eq(verdict("203.0.113.9", "ok"), "ip", "the address itself")
    eq(verdict("203.0.113.10", "ok"), nil, "its neighbour")
    eq(verdict("198.51.100.200", "ok"), "ip", "inside the /24")
    eq(verdict("198.51.101.1", "ok"), nil, "just past the /24")
    eq(verdict("192.0.31.255", "ok"), "ip", "last address of the /20")
    eq(verdict("192.0.32.0", "ok"), nil, "first address past the /20")
    eq(verdict("2001:db8:ffff::1", "ok"), "ip", "inside the IPv6 /32")
    eq(verdict("2001:db9::1", "ok"), nil, "past the IPv6 /32")
    check(require("urlproxy.blocks").load().active, "the set is active")
end)

case("an entry written without a prefix length (redis-cli) blocks that one address", function()
    unit.watching()
    unit.block("ip", { "203.0.113.9", "not-an-address" })
    eq(verdict("203.0.113.9", "ok"), "ip", "the address")
    eq(verdict("203.0.113.8", "ok"), nil, "another")
    eq(#shim.logged("not-an-address is not an address or network"), 1, "the unusable entry is logged")
end)

case("user-agent and referer regexes: unanchored, case-sensitive, each only on its header", function()
    unit.watching()
    unit.block("user-agent", { "^EvilBot", "Scraper/[0-9]+" })
    unit.block("referer", { "spam\\.example" })
    eq(verdict("192.0.2.1", "EvilBot/1.0"), "user-agent", "EvilBot")
    eq(verdict("192.0.2.1", "Mozilla (Scraper/2)"), "user-agent", "Scraper anywhere")
    eq(verdict("192.0.2.1", "evilbot/1.0"), nil, "other case")
    eq(verdict("192.0.2.1", "Mozilla", "https://spam.example/x"), "referer", "spam referer")
    eq(verdict("192.0.2.1", "Mozilla", "https://example.org/"), nil, "other referer")
    eq(verdict("192.0.2.1", nil, "https://example.org/EvilBot"), nil, "the UA regex does not see the referer")
end)

case("an empty or missing User-Agent is refused only when block_empty_user_agent is on", function()
    unit.watching()
    eq(verdict("192.0.2.1", nil), nil, "missing, rule off")
    unit.configure({ block_empty_user_agent = true })
    package.loaded["urlproxy.blocks"] = nil -- the rule is read when a set is built
    require("urlproxy.blocks")
    shim.dicts.urlproxy_state:delete("blocks")
    eq(verdict("192.0.2.1", nil), "no-user-agent", "missing, rule on")
    eq(verdict("192.0.2.1", ""), "no-user-agent", "empty, rule on")
    eq(verdict("192.0.2.1", "curl/8"), nil, "present")
end)

case("a pattern that does not compile is logged and skipped; the others still apply", function()
    unit.watching()
    unit.block("user-agent", { "(unclosed", "BadBot" })
    eq(verdict("192.0.2.1", "BadBot"), "user-agent", "the good pattern")
    eq(verdict("192.0.2.1", "(unclosed"), nil, "the broken one matches nothing")
    eq(#shim.logged("ignoring a blocked user-agent pattern (unclosed"), 1, "log lines")
end)

case("a list past its limit is cut to the first entries and says so", function()
    unit.watching()
    local many = {}
    for i = 1, 101 do
        many[i] = ("bot%03d"):format(i)
    end
    unit.block("user-agent", many)
    eq(verdict("192.0.2.1", "bot100"), "user-agent", "the 100th")
    eq(verdict("192.0.2.1", "bot101"), nil, "the 101st")
    eq(#shim.logged("holds 101 entries: using the first 100"), 1, "log lines")
end)

case("a block key of the wrong type empties that list only", function()
    unit.watching()
    shim.redis.wrongtype["toolforgectl:block:user-agent"] = true
    unit.block("referer", { "spam" })
    eq(verdict("192.0.2.1", "x", "spam"), "referer", "the referer list still applies")
    eq(#shim.logged("WRONGTYPE"), 1, "log lines")
end)

case("cached like routes: fresh until the block lists change, then re-read once", function()
    local blocks = require "urlproxy.blocks"
    unit.watching()
    eq(blocks.cached(), nil, "nothing known before the first read")
    blocks.load()
    check(blocks.cached(), "fresh after reading")
    unit.changed("hello")
    unit.changed("admin")
    shim.clock = shim.clock + 0.001
    check(blocks.cached(), "still fresh after writes to tools' routes")
    unit.block("user-agent", { "NewBot" })
    lists_changed()
    shim.clock = shim.clock + 0.001
    eq(blocks.cached(), nil, "stale once the lists changed")
    eq(verdict("192.0.2.1", "NewBot"), "user-agent", "the new entry applies")
    eq(hkeys_sent(), 6, "two reads in all")
    shim.clock = shim.clock + 61
    eq(blocks.cached(), nil, "stale after cache_ttl")
end)

case("when every tool is stale (the watcher resubscribed, Redis was flushed), so are the lists", function()
    local blocks = require "urlproxy.blocks"
    unit.watching()
    blocks.load()
    check(blocks.cached(), "fresh after reading")
    unit.watching()
    shim.clock = shim.clock + 0.001
    eq(blocks.cached(), nil, "stale")
    check(blocks.current.stale, "the flag the front reads")
end)

case("lists read while they changed are used once, then read again", function()
    local blocks = require "urlproxy.blocks"
    unit.watching()
    shim.redis.during = lists_changed -- after the read began (the head was taken), before it ended
    blocks.load()
    check(blocks.current.stale, "stale from the start")
    eq(blocks.cached(), nil, "not fresh")
end)

case("another worker's read is used from the shared dict, without asking Redis", function()
    unit.watching()
    unit.block("ip", { "203.0.113.0/24" })
    require("urlproxy.blocks").load()
    local asked = #shim.redis.calls
    package.loaded["urlproxy.blocks"] = nil -- another worker: its own module state, the same dicts
    ngx.var.binary_remote_addr = binary("203.0.113.7")
    local blocks = require "urlproxy.blocks"
    local set = blocks.cached()
    check(set, "fresh from the shared dict")
    eq(blocks.match(set), "ip", "verdict")
    eq(#shim.redis.calls, asked, "Redis commands")
end)

case("Redis failing: the last lists are kept; with none known, nothing is blocked", function()
    local blocks = require "urlproxy.blocks"
    unit.watching()
    shim.redis.down = true
    eq(verdict("203.0.113.7", "EvilBot"), nil, "nothing known: fail open")
    shim.redis.down = false
    unit.block("user-agent", { "EvilBot" })
    lists_changed()
    shim.clock = shim.clock + 10 -- past the back-off
    eq(verdict("203.0.113.7", "EvilBot"), "user-agent", "read once Redis answers")
    lists_changed()
    shim.clock = shim.clock + 0.001
    shim.redis.down = true
    eq(verdict("203.0.113.7", "EvilBot"), "user-agent", "stale lists kept while Redis fails")
    eq(blocks.cached(), nil, "but not fresh: the front hands requests to the slow path")
end)

case("the front hands a blocked request to the slow path, which answers 403 and counts it", function()
    unit.watching()
    unit.store("hello", { { ".*", "http://10.0.0.1:8000" } })
    unit.block("user-agent", { "EvilBot" })
    local urlproxy = require "urlproxy"
    ngx.var.request_uri, ngx.var.binary_remote_addr = "/hello/", binary("192.0.2.1")
    ngx.var.http_user_agent = "Mozilla"
    urlproxy.access()
    eq(urlproxy.fast(), "http://10.0.0.1:8000", "front's decision for another client")
    ngx.var.http_user_agent = "EvilBot"
    eq(urlproxy.fast(), nil, "front's decision for the blocked one")
    urlproxy.access()
    eq({ shim.exited, ngx.var.urlproxy_backend }, { 403, "blocked-user-agent" }, "slow path's answer")
    local metrics = require "urlproxy.metrics"
    metrics.flush()
    check(metrics.render():find('urlproxy_blocked_total{kind="user-agent"} 1', 1, true), "counted")
end)

case("the front uses its lists until they change in Redis; other tools' writes leave them in use", function()
    unit.watching()
    unit.store("hello", { { ".*", "http://10.0.0.1:8000" } })
    local urlproxy = require "urlproxy"
    ngx.var.request_uri, ngx.var.binary_remote_addr = "/hello/", binary("192.0.2.1")
    ngx.var.http_user_agent = "EvilBot"
    urlproxy.access() -- reads the (empty) lists and hello's routes
    eq(urlproxy.fast(), "http://10.0.0.1:8000", "front's decision")
    unit.changed("echo")
    shim.clock = shim.clock + 0.001
    eq(urlproxy.fast(), "http://10.0.0.1:8000", "front's decision after a write to another tool")
    unit.block("user-agent", { "EvilBot" })
    lists_changed()
    shim.clock = shim.clock + 0.001
    local asked = #shim.redis.calls
    eq(urlproxy.fast(), nil, "front's decision once the lists changed")
    eq(#shim.redis.calls, asked, "the front asked Redis nothing")
    urlproxy.access()
    eq(shim.exited, 403, "the slow path reads the lists and refuses")
    eq(urlproxy.fast(), nil, "front's decision now: blocked")
    ngx.var.http_user_agent = "Mozilla"
    eq(urlproxy.fast(), "http://10.0.0.1:8000", "front's decision for another client, from the new lists")
end)

case("a regex past the match limit is skipped, logged, and not tried again until the lists are re-read", function()
    unit.watching()
    unit.block("user-agent", { "^(a+)+$", "EvilBot" })
    shim.match_errors["^(a+)+$"] = "pcre_exec() failed: -8"
    local tried = 0
    local re_find = ngx.re.find
    ngx.re.find = function(subject, pattern, ...)
        if pattern == "^(a+)+$" and subject ~= "" then
            tried = tried + 1
        end
        return re_find(subject, pattern, ...)
    end
    eq(verdict("192.0.2.1", "aaaaaaaaaaaa!"), nil, "the costly pattern matches nothing")
    eq(verdict("192.0.2.1", "aaaaaaaaaaaa!"), nil, "again")
    eq(verdict("192.0.2.1", "EvilBot/1"), "user-agent", "the other pattern still applies")
    eq(tried, 1, "times the costly pattern was tried")
    eq(#shim.logged("blocked user-agent pattern ^(a+)+$ skipped until the block lists are read again: "
        .. "pcre_exec() failed: -8"), 1, "log lines")
    lists_changed()
    shim.clock = shim.clock + 0.001
    eq(verdict("192.0.2.1", "aaaaaaaaaaaa!"), nil, "re-read: tried once more")
    eq(tried, 2, "times tried")
end)

case("the last costly regex gone, a set with nothing else to check is inactive again", function()
    unit.watching()
    unit.block("referer", { "^(a+)+$" })
    shim.match_errors["^(a+)+$"] = "pcre_exec() failed: -8"
    local blocks = require "urlproxy.blocks"
    check(blocks.load().active, "active while it has a pattern")
    eq(verdict("192.0.2.1", "x", "aaaa!"), nil, "verdict")
    check(not blocks.load().active, "inactive: the front skips the check")
end)
