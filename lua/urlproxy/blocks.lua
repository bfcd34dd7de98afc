-- The block lists: client networks, and regexes over the User-Agent and Referer headers.
--
-- They live in Redis (`toolforgectl:block:<kind>`, hashes whose fields are the entries, written by
-- `toolforgectl block` or by anyone with redis-cli) and are cached like one more tool's routes:
-- per worker (pinned in routecache.lua under changes.BLOCKS, a name no tool can have) and in the
-- state dict. The watcher publishes every change of those keys under that name, so a worker's set
-- is marked stale by the same walk of the invalidation log that marks tools stale, and a write to
-- any tool's routes leaves it alone. A set is fresh while it is not stale and younger than
-- `cache_ttl`; stale sets are kept when Redis fails.
--
-- The front's balancer only reads fields after its route lookup (which applied the log): the
-- worker's set (`_M.current`) and its `stale` flag, no call; when there is no fresh set, or the
-- request is blocked, the request takes the slow path, which reads Redis if it must (`load()`)
-- and answers the 403. With every list empty and `block_empty_user_agent` off, a request costs two
-- field reads. (The front does not check `cache_ttl` too: a fresh route entry was read at most
-- `cache_ttl` ago, and the slow path that read it refreshed the lists if they were older, so they
-- are at most twice that old; that only matters when no invalidation reports changes: Redis < 6.)
--
-- A regex that gives up at `lua_regex_match_limit` is skipped for the request and dropped from this
-- worker's set (logged) until the lists are read again, at the latest after `cache_ttl`: a costly
-- pattern is paid for once per worker and read, not by every request of every tool.
local cjson = require "cjson.safe"
local backend = require "urlproxy.backend"
local changes = require "urlproxy.changes"
local redisconn = require "urlproxy.redisconn"
local routecache = require "urlproxy.routecache"
local schema = require "urlproxy.schema"
local settings = require "urlproxy.settings"
local shdict = require "urlproxy.shdict"

local _M = {}

local ngx_now = ngx.now
local ngx_var = ngx.var
local re_find = ngx.re.find
local byte = string.byte
local char = string.char
local sub = string.sub
local floor = math.floor

local state = shdict.state()
local BLOCKS = shdict.BLOCKS
local BLOCKS_NAME = changes.BLOCKS

-- The kinds, in a fixed order (the order Redis is asked and lists are checked in).
local KINDS = {}
for kind in pairs(schema.BLOCK_LIMITS) do
    KINDS[#KINDS + 1] = kind
end
table.sort(KINDS)

-- For a prefix of `rem` bits into a byte (1-7): what its bits below the prefix are worth.
local BELOW = { 128, 64, 32, 16, 8, 4, 2 }

-- The first `len` bits of the address `bytes` (as $binary_remote_addr spells it), as a string.
local function prefix(bytes, len)
    local full, rem = floor(len / 8), len % 8
    if rem == 0 then
        return sub(bytes, 1, full)
    end
    local partial = byte(bytes, full + 1)
    return sub(bytes, 1, full) .. char(partial - partial % BELOW[rem])
end

-- Add the network `entry` ("10.0.0.0/24", "2001:db8::/32", or an address alone) to `nets`:
-- address length in bytes -> {lengths = {prefix lengths, longest first}, [length] = {prefix = true}}.
local function add_network(nets, entry)
    local address, bits = entry:match("^([^/]+)/(%d+)$")
    local bytes = backend.address_bytes(address or entry)
    local len = bits and tonumber(bits) or (bytes and #bytes * 8)
    if not bytes or len > #bytes * 8 then
        redisconn.log_error("ignoring a blocked network: " .. entry .. " is not an address or network")
        return
    end
    local family = nets[#bytes]
    if not family then
        family = { lengths = {} }
        nets[#bytes] = family
    end
    if not family[len] then
        family[len] = {}
        family.lengths[#family.lengths + 1] = len
        table.sort(family.lengths, function(a, b)
            return a > b
        end)
    end
    family[len][prefix(bytes, len)] = true
end

-- The regexes of `list` that compile (the others are logged and skipped: never silently ignored).
local function patterns(kind, list)
    local usable = {}
    for _, pattern in ipairs(list) do
        local _, _, err = re_find("", pattern, "jo")
        if err then
            redisconn.log_error("ignoring a blocked " .. kind .. " pattern " .. pattern .. ": " .. err)
        else
            usable[#usable + 1] = pattern
        end
    end
    return usable
end

-- The set requests are checked against, from `lists` (kind -> sorted entries), stamped like a
-- route entry (`token`: the invalidation log's head it was read under, `at`) and with the state
-- dict text it came from; `stale` if the lists changed since `token`.
local function compile(lists, token, at, text)
    local set = {
        token = token,
        at = at,
        text = text,
        stale = changes.changed_since(BLOCKS_NAME, token),
        nets = {},
        agents = patterns("user-agent", lists["user-agent"] or {}),
        referers = patterns("referer", lists.referer or {}),
        empty_agent = settings.current.block_empty_user_agent,
    }
    for _, entry in ipairs(lists.ip or {}) do
        add_network(set.nets, entry)
    end
    set.any_net = next(set.nets) ~= nil
    set.active = set.any_net or set.empty_agent or set.agents[1] ~= nil or set.referers[1] ~= nil
    return set
end

-- Stop matching `list[i]` (of `set`) in this worker: it gave up at the match limit with `err`.
local function drop_costly(set, kind, list, i, err)
    redisconn.log_error(("blocked %s pattern %s skipped until the block lists are read again: %s")
        :format(kind, list[i], err))
    table.remove(list, i)
    set.active = set.any_net or set.empty_agent or set.agents[1] ~= nil or set.referers[1] ~= nil
end

-- This worker's set (nil until one was read), fresh or not; also `_M.current`, which the front
-- reads directly (urlproxy.fast(): no call on the hot path).
local current

local function adopt(set)
    current = set
    _M.current = set
    routecache.pin(BLOCKS_NAME, set)
    return set
end

local function decode(text)
    local data = cjson.decode(text)
    if type(data) ~= "table" or type(data.lists) ~= "table" then
        return nil
    end
    return compile(data.lists, data.token, data.at, text)
end

-- The set when it is known fresh without asking Redis; nil otherwise (no I/O).
function _M.cached()
    -- Apply the invalidation log first, so a set read after this is not marked stale by changes
    -- its read already saw (a worker's first walk of the log marks everything stale).
    routecache.token()
    local set = current
    if set and routecache.is_fresh(set) then
        return set
    end
    local text = state:get(BLOCKS)
    -- The text this worker's set came from (interned: one pointer compare) is not decoded again.
    if text and not (set and set.text == text) then
        set = decode(text)
        if set then
            adopt(set)
        end
    end
    if set and routecache.is_fresh(set) then
        return set
    end
    return nil
end

-- Every list, sorted and cut to its limit, from one pipelined round trip; nil and an error when
-- Redis fails. A key holding something else (another writer's mistake) reads as an empty list.
local function fetch()
    local red, err = redisconn.connect()
    if not red then
        return nil, err
    end
    red:init_pipeline()
    for _, kind in ipairs(KINDS) do
        red:hkeys(schema.BLOCK_PREFIX .. kind)
    end
    local replies
    replies, err = red:commit_pipeline()
    if not replies then
        red:close()
        return nil, "HKEYS " .. schema.BLOCK_PREFIX .. "*: " .. tostring(err)
    end
    redisconn.release(red)
    local lists = {}
    for i, kind in ipairs(KINDS) do
        local list = replies[i]
        if type(list) ~= "table" or list[1] == false then
            local answer = type(list) == "table" and list[2] or list
            redisconn.log_error("HKEYS " .. schema.BLOCK_PREFIX .. kind .. " answered " .. tostring(answer))
            list = {}
        end
        table.sort(list)
        local limit = schema.BLOCK_LIMITS[kind]
        if #list > limit then
            local why = "the %s block list holds %d entries: using the first %d"
            redisconn.log_error(why:format(kind, #list, limit))
            list = { unpack(list, 1, limit) }
        end
        lists[kind] = list
    end
    return lists
end

-- The set to check a slow-path request against: the fresh cached one, else Redis's, else the
-- last one known (stale-if-error), else none (nothing is blocked while nothing is known, except
-- by the empty User-Agent rule, which needs no Redis).
function _M.load()
    local set = _M.cached()
    if set then
        return set
    end
    -- The head before asking Redis: every change published up to it is in what Redis answers; one
    -- published meanwhile makes the set stale at once (compile() checks after the read).
    local token, now = changes.head(), ngx_now()
    if redisconn.available() then
        local lists, err = fetch()
        if lists then
            local text = cjson.encode({ token = token, at = now, lists = lists })
            state:set(BLOCKS, text)
            return adopt(compile(lists, token, now, text))
        end
        redisconn.mark_down(err)
    end
    return current or adopt(compile({}, nil, 0, nil))
end

-- Whether `subject` matches a regex of `list` (the `kind` list of `set`); one that gives up at the
-- match limit counts as no match and is dropped from the set.
local function any_match(set, kind, subject, list)
    local i = 1
    while list[i] do
        local from, _, err = re_find(subject, list[i], "jo")
        if from then
            return true
        end
        if err then
            drop_costly(set, kind, list, i, err)
        else
            i = i + 1
        end
    end
    return false
end

-- What blocks this request under `set`: "ip", "no-user-agent", "user-agent" or "referer"; nil if nothing.
function _M.match(set)
    if set.any_net then
        local address = ngx_var.binary_remote_addr
        local family = address and set.nets[#address]
        if family then
            local lengths = family.lengths
            for i = 1, #lengths do
                local len = lengths[i]
                if family[len][prefix(address, len)] then
                    return "ip"
                end
            end
        end
    end
    if set.empty_agent or set.agents[1] then
        local agent = ngx_var.http_user_agent
        if agent == nil or agent == "" then
            if set.empty_agent then
                return "no-user-agent"
            end
        elseif any_match(set, "user-agent", agent, set.agents) then
            return "user-agent"
        end
    end
    if set.referers[1] then
        local referer = ngx_var.http_referer
        if referer and any_match(set, "referer", referer, set.referers) then
            return "referer"
        end
    end
    return nil
end

return _M
