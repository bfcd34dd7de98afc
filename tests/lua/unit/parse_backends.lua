-- Parse backend URLs with lua/urlproxy/backend.lua, for the Python/Lua grammar comparison.
-- Usage: lua5.1 parse_backends.lua <repo root> < ["url", ...]  ->  [{scheme, host, port} or null, ...]
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = arg[1] .. "/lua/?.lua;" .. here .. "/?.lua;" .. package.path

local cjson = require "cjson.safe"
require("ngx_shim").reset()
local backend = require "urlproxy.backend"

local urls = assert(cjson.decode(io.read("*a")))
local peers = {}
for i, url in ipairs(urls) do
    peers[i] = backend.parse(url) or cjson.null
end
io.write(cjson.encode(peers))
