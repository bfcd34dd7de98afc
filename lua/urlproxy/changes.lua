-- The invalidation log: which tools' routes changed in Redis, in order, for every worker.
--
-- The watcher (one worker) publishes each change it learns from Redis as the next number of a
-- sequence: a slot of a ring in the state dict names the tool, and `changed:<tool>` keeps that
-- tool's last number for `cache_ttl` seconds. A worker reads the sequence's head at most once per
-- clock tick (routecache.lua); when it moved, it walks the new slots and marks only those tools'
-- entries stale, so a write to one tool costs every other tool nothing. A cache entry is stamped
-- with the head it was read under: it is stale if its tool (or every tool) changed after that.
-- Every tool changes at once when the watcher (re)subscribes (messages may have been missed),
-- when Redis is flushed, and when a worker fell more than RING changes behind.
local settings = require "urlproxy.settings"
local shdict = require "urlproxy.shdict"

local _M = {}

local find = string.find
local sub = string.sub
local tonumber = tonumber

local state = shdict.state()
local CHANGES, CHANGE_NEXT, CHANGED = shdict.CHANGES, shdict.CHANGE_NEXT, shdict.CHANGED
local ALL_CHANGED, EPOCH = shdict.ALL_CHANGED, shdict.EPOCH
local EVERY_TOOL = "*"

-- The name the block lists change under (watcher.lua, blocks.lua): tool names have no underscore.
_M.BLOCKS = "_blocks"

-- Slots in the ring: a worker that fell further behind than this drops its whole table.
_M.RING = 1024

local SLOTS = {}
for i = 0, _M.RING - 1 do
    SLOTS[i] = shdict.CHANGE_SLOT .. i
end

-- The number of the last change published; nil until the watcher first subscribed (then nothing
-- counts as fresh: no change could have been seen).
function _M.head()
    return state:get(CHANGES)
end

-- Numbers are handed out atomically, so two watchers (an old worker's still running through a
-- reload) never write the same slot for different tools.
local function next_number()
    return state:incr(CHANGE_NEXT, 1, 0)
end

-- Slot first, head last: a worker that sees the new head finds its slot already written. With two
-- writers the head may briefly trail a written slot or step back; a walk then cannot tell and the
-- worker drops its table: never a missed change, at worst one extra read per tool.
local function append(n, what)
    state:set(SLOTS[n % _M.RING], n .. " " .. what)
    if (state:get(CHANGES) or 0) < n then
        state:set(CHANGES, n)
    end
    return n
end

-- Every tool's cached routes are stale from now on; `why` is for the log.
function _M.publish_all(why)
    local n = next_number()
    state:set(ALL_CHANGED, n)
    state:incr(EPOCH, 1, 0)
    ngx.log(ngx.INFO, "urlproxy: every cached route is stale: ", why)
    return append(n, EVERY_TOOL)
end

-- `tool`'s cached routes are stale from now on.
function _M.publish(tool)
    local n = next_number()
    -- safe_set: the per-tool marks are the only keys that grow with traffic; when the dict is full
    -- they must not evict the state's other keys (and a mark that cannot be kept means every tool).
    local ok = state:safe_set(CHANGED .. tool, n, settings.current.cache_ttl)
    if not ok then
        return _M.publish_all("no room in the state dict to mark " .. tool)
    end
    return append(n, tool)
end

-- Call `stale(tool)` for each tool changed after change `from` up to `to`. False when the log
-- cannot tell (no head yet, every tool changed, or slots already overwritten): all is stale then.
function _M.walk(from, to, stale)
    if from == nil or to == nil or to < from or to - from > _M.RING then
        return false
    end
    for n = from + 1, to do
        local slot = state:get(SLOTS[n % _M.RING])
        local space = slot and find(slot, " ", 1, true)
        if not space or tonumber(sub(slot, 1, space - 1)) ~= n then
            return false
        end
        local tool = sub(slot, space + 1)
        if tool == EVERY_TOOL then
            return false
        end
        stale(tool)
    end
    return true
end

-- Whether `tool` (or every tool) changed after change `stamp`: routes read under that stamp may be
-- older than Redis. A nil stamp (read before the watcher first subscribed) is never current.
function _M.changed_since(tool, stamp)
    if stamp == nil then
        return true
    end
    return (state:get(ALL_CHANGED) or 0) > stamp or (state:get(CHANGED .. tool) or 0) > stamp
end

return _M
