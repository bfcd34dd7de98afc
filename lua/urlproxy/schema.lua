-- What the route store holds, mirrored once from Python: the tool-name rule
-- (toolforgectl/core/validate.py) and the Redis key names (toolforgectl/adapters/routestore/schema.py).
-- tests/fixtures/schema.json pins both copies: change all three together.
local _M = {
    -- A whole tool name matches this (a lowercase DNS label, so at most 63 characters; not all
    -- digits, so a request to an IP address never names a tool in host mode).
    TOOL_NAME = [[(?![0-9]+$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?]],
    PREFIX = "prefix:",
    REDIRECT = "redirect:",
    ADMIN_TOOL = "admin",
    VERSION_KEY = "toolforgectl:routes:version",
    -- The block lists: BLOCK_PREFIX .. kind, a hash whose fields are the entries; at most
    -- BLOCK_LIMITS[kind] of them are read (the route store refuses more).
    BLOCK_PREFIX = "toolforgectl:block:",
    BLOCK_LIMITS = { ip = 1000, ["user-agent"] = 100, referer = 100 },
}

return _M
