-- changes.lua: the invalidation log that tells every worker which tools changed, in order.
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

local function walked(from, to)
    local tools = {}
    local complete = require("urlproxy.changes").walk(from, to, function(tool)
        tools[#tools + 1] = tool
    end)
    return complete, tools
end

case("changes are numbered in order, and a walk names the tools changed after a number", function()
    local changes = require "urlproxy.changes"
    eq(changes.head(), nil, "head before the watcher subscribed")
    local numbers = { changes.publish_all("test"), changes.publish("hello"), changes.publish("echo") }
    eq(numbers, { 1, 2, 3 }, "numbers")
    eq({ walked(1, 3) }, { true, { "hello", "echo" } }, "walk from 1")
    eq({ walked(3, 3) }, { true, {} }, "walk from the head")
end)

case("a walk cannot tell (so everything is stale) past a change of every tool, or without a head", function()
    local changes = require "urlproxy.changes"
    changes.publish_all("test")
    changes.publish("hello")
    changes.publish_all("resubscribed")
    eq(walked(1, 3), false, "walk over a change of every tool")
    eq(walked(nil, 3), false, "walk from no head")
    eq(walked(3, nil), false, "walk to no head")
end)

case("a worker more than RING changes behind, or reading an overwritten slot, drops everything", function()
    local changes = require "urlproxy.changes"
    changes.publish_all("test")
    for i = 1, changes.RING + 1 do
        changes.publish("tool" .. i)
    end
    local head = changes.head()
    eq(walked(head - changes.RING - 1, head), false, "walk of RING + 1 changes")
    eq({ walked(head - 2, head) }, { true, { "tool" .. changes.RING, "tool" .. changes.RING + 1 } }, "recent")
    local shdict = require "urlproxy.shdict"
    shdict.state():set(shdict.CHANGE_SLOT .. head % changes.RING, (head + changes.RING) .. " other")
    eq(walked(head - 1, head), false, "walk over a slot written by a later lap")
end)

case("changed_since: a tool's own change or a change of every tool after the stamp", function()
    unit.configure({ cache_ttl = 60 })
    local changes = require "urlproxy.changes"
    changes.publish_all("test") -- 1
    changes.publish("hello") -- 2
    eq({ changes.changed_since("hello", 1), changes.changed_since("hello", 2) }, { true, false }, "hello")
    eq(changes.changed_since("echo", 1), false, "echo: another tool's change")
    eq(changes.changed_since("echo", nil), true, "no stamp (read before the watcher subscribed)")
    shim.clock = shim.clock + 60
    -- Whatever was read before hello's change is past cache_ttl by now: the mark is not needed.
    eq(changes.changed_since("hello", 1), false, "hello after cache_ttl")
    changes.publish_all("flushed") -- 3
    eq(changes.changed_since("echo", 2), true, "echo after every tool changed")
end)

case("with no room left for a tool's mark, every tool counts as changed", function()
    local changes = require "urlproxy.changes"
    local shdict = require "urlproxy.shdict"
    changes.publish_all("test")
    shdict.state().full = true
    changes.publish("hello")
    eq(walked(1, 2), false, "walk")
    check(changes.changed_since("echo", 1), "echo changed too")
    eq(#shim.logged("no room in the state dict to mark hello", ngx.INFO), 1, "log lines")
end)

case("two watchers at once (a reload): numbers never repeat, and a head that steps back drops all", function()
    local changes = require "urlproxy.changes"
    local shdict = require "urlproxy.shdict"
    changes.publish_all("old worker")
    changes.publish("hello")
    shdict.state():set(shdict.CHANGES, 1) -- the other watcher's late write of an older head
    eq(changes.publish("echo"), 3, "the next number")
    eq(walked(3, 1), false, "a walk backwards")
    eq({ walked(1, 3) }, { true, { "hello", "echo" } }, "a walk over both")
end)
