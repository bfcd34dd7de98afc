-- The route store's Redis key names, mirrored once from toolforgectl/adapters/routestore.py.
-- tests/fixtures/schema.json pins both copies: change all three together.
local _M = {
    PREFIX = "prefix:",
    REDIRECT = "redirect:",
    ADMIN_TOOL = "admin",
    VERSION_KEY = "toolforgectl:routes:version",
}

return _M
