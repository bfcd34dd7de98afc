-- Run one Lua unit test file against a checkout's lua/ tree, without nginx.
-- Usage: lua5.1 tests/lua/unit/runner.lua <repo root> <test file>   (tests/lua/test_unit.py does this)
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local root, file = arg[1], arg[2]
if not root or not file then
    io.stderr:write("usage: lua5.1 runner.lua <repo root> <test file>\n")
    os.exit(2)
end
package.path = root .. "/lua/?.lua;" .. here .. "/?.lua;" .. package.path

local unit = require "unit"
unit.root = root
os.exit(unit.run(file) == 0 and 0 or 1)
