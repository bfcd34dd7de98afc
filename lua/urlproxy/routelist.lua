-- `/list` on the internal port: {"<tool>": {"status": "active"}} for every tool with a route.
--
-- The original ran `KEYS prefix:*`, which blocks Redis. This walks the keys with SCAN (Redis stays
-- responsive between batches) and keeps the encoded answer per position in the invalidation log
-- (changes.lua), so repeated calls cost nothing until a route changes; while Redis fails, the last
-- answer is served, marked stale.
local cjson = require "cjson.safe"
local redisconn = require "urlproxy.redisconn"
local routecache = require "urlproxy.routecache"
local schema = require "urlproxy.schema"
local settings = require "urlproxy.settings"
local shdict = require "urlproxy.shdict"

local _M = {}

local state = shdict.state()
local LIST_BODY, LIST_TOKEN = shdict.LIST_BODY, shdict.LIST_TOKEN
local ACTIVE = { status = "active" }

local function scan_tools()
    local red, err = redisconn.connect()
    if not red then
        return nil, err
    end
    local tools, cursor, skip = {}, "0", #schema.PREFIX + 1
    local count = settings.current.list_scan_count
    repeat
        local reply
        reply, err = red:scan(cursor, "MATCH", schema.PREFIX .. "*", "COUNT", count, "TYPE", "hash")
        if not reply then
            red:close()
            return nil, "SCAN: " .. tostring(err)
        end
        cursor = reply[1]
        for _, key in ipairs(reply[2]) do
            tools[key:sub(skip)] = ACTIVE
        end
    until cursor == "0"
    redisconn.release(red)
    return tools
end

local function send(body, stale)
    ngx.header["Content-Type"] = "application/json"
    if stale then
        ngx.header["X-Toolforgectl-Stale"] = "true"
    end
    ngx.print(body)
end

function _M.serve()
    local token = routecache.token()
    local body = state:get(LIST_BODY)
    if body and token and state:get(LIST_TOKEN) == token then
        return send(body, redisconn.marked_down())
    end
    local tools, err
    if redisconn.available() then
        tools, err = scan_tools()
        if tools then
            body = cjson.encode(tools)
            state:set(LIST_BODY, body)
            state:set(LIST_TOKEN, token or "")
            return send(body)
        end
        redisconn.mark_down(err)
    end
    if body then
        return send(body, true)
    end
    ngx.status = 503
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cjson.encode({ error = "route store unavailable" }))
end

return _M
