-- What the front's hot path reads of the request without copying it into Lua strings.
--
-- Two reads every proxied request makes, done here through lua-resty-core's FFI declarations
-- (resty.core.var and resty.core.base, the same calls `ngx.var` and the balancer API make) instead
-- of the public wrappers, because of what the wrappers cost at thousands of tools
-- (docs/dataplane.md, "Performance notes"):
--
-- - `tool_segment()`: the first path segment of the URI as the client sent it. Making a Lua string
--   of the whole `$request_uri` made a new string per distinct URI for LuaJIT to intern and collect;
--   nginx's `map` with a regex (what named the segment before) cost ~1,500 instructions a request.
--   Here the segment is cut from nginx's own copy of the request line, and only the tool's name
--   becomes a Lua string (one LuaJIT has already interned, for a tool it has seen).
-- - `id()`: a number naming the request while it is in flight (its address), so the log phase can
--   find what the balancer phase decided for it without a round trip through an nginx variable.
local ffi = require "ffi"
local base = require "resty.core.base"
require "resty.core.var" -- declares ngx_http_lua_ffi_var_get

local C = ffi.C
local ffi_string = ffi.string
local ffi_cast = ffi.cast
local tonumber = tonumber
local get_request = base.get_request

local _M = {}

ffi.cdef [[
void *memchr(const void *s, int c, size_t n);
]]

local bytes = ffi.typeof("const unsigned char *")
local address = ffi.typeof("intptr_t")

local SLASH = string.byte("/")
local QUESTION = string.byte("?")

local REQUEST_URI = "request_uri"
local name_buf = ffi.new("char[?]", #REQUEST_URI) -- where nginx lowercases the name
local value = ffi.new("char *[1]")
local value_len = ffi.new("size_t[1]")
local errmsg = base.get_errmsg_ptr()

-- How many bytes of `from` (`len` long) come before the first `byte`; `len` when there is none.
local function span(from, len, byte)
    local found = C.memchr(from, byte, len)
    if found == nil then
        return len
    end
    return tonumber(ffi_cast(bytes, found) - ffi_cast(bytes, from))
end

-- The first segment of the raw URI ("" when the URI does not start with "/"): what follows the
-- leading "/" up to the next "/" or "?", percent-encoding and all, as the template's former map
-- `^/([^/?]*)` had it. A `..%2f` in it stays part of the name, never a path step.
function _M.tool_segment()
    local rc = C.ngx_http_lua_ffi_var_get(get_request(), REQUEST_URI, #REQUEST_URI, name_buf, 0,
        value, value_len, errmsg)
    if rc ~= 0 then
        return ""
    end
    local len = tonumber(value_len[0])
    local uri = ffi_cast(bytes, value[0])
    if len == 0 or uri[0] ~= SLASH then
        return ""
    end
    local rest = uri + 1
    local segment = span(rest, len - 1, SLASH)
    segment = span(rest, segment, QUESTION)
    return ffi_string(rest, segment)
end

-- A number unique among the requests in flight in this worker (a finished request's may be reused).
function _M.id()
    return tonumber(ffi_cast(address, get_request()))
end

return _M
