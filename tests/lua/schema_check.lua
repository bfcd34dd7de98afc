-- Lua side of the schema pin: lua/urlproxy/schema.lua must equal tests/fixtures/schema.json, key for key.
-- Run: lua5.1 tests/lua/schema_check.lua <repo root>
local cjson = require "cjson"

local root = arg[1] or "."
package.path = root .. "/lua/?.lua;" .. package.path
local schema = require "urlproxy.schema"

local file = assert(io.open(root .. "/tests/fixtures/schema.json", "r"))
local pinned = cjson.decode(file:read("*a"))
file:close()

local problems = 0
for name, value in pairs(pinned) do
    if schema[name] ~= value then
        io.stderr:write(("lua/schema.lua: %s is %s, the fixture says %s\n"):format(name, tostring(schema[name]), value))
        problems = problems + 1
    end
end
for name in pairs(schema) do
    if pinned[name] == nil then
        io.stderr:write(("lua/schema.lua: %s is not in tests/fixtures/schema.json\n"):format(name))
        problems = problems + 1
    end
end
os.exit(problems == 0 and 0 or 1)
