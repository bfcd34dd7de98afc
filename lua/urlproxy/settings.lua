-- The data plane's settings: the JSON file `toolforgectl render` writes beside the nginx config.
-- nginx.conf names the file with `env TOOLFORGECTL_URLPROXY_SETTINGS=<path>`; templates never splice Lua.
local cjson = require "cjson.safe"

local _M = {}

local ENV_NAME = "TOOLFORGECTL_URLPROXY_SETTINGS"

-- Every key the Lua reads, with the value used when the file leaves it out.
local DEFAULTS = {
    routing = "path",
    default_backend = false,
    maintenance = false,
    redis_host = "127.0.0.1",
    redis_port = 6379,
    redis_db = 0,
    redis_timeout_ms = 100,
    redis_keepalive_ms = 60000,
    redis_pool_size = 32,
    invalidation_poll_ms = 25,
    cache_ttl = 60,
    worker_cache_size = 20000,
    backoff_max = 5,
    log_interval = 10,
}

_M.current = nil

local function read_file(path)
    local file, err = io.open(path, "r")
    if not file then
        return nil, err
    end
    local text = file:read("*a")
    file:close()
    return text
end

-- Load the settings once; raises with a clear message, since nginx must not start half-configured.
function _M.load(path)
    path = path or os.getenv(ENV_NAME)
    if not path then
        error("urlproxy: " .. ENV_NAME .. " is not set (nginx.conf needs its `env` line)")
    end
    local text, err = read_file(path)
    if not text then
        error("urlproxy: cannot read settings " .. path .. ": " .. tostring(err))
    end
    local data, decode_err = cjson.decode(text)
    if type(data) ~= "table" then
        error("urlproxy: settings " .. path .. " are not a JSON object: " .. tostring(decode_err))
    end
    for key, value in pairs(DEFAULTS) do
        if data[key] == nil or data[key] == cjson.null then
            data[key] = value
        end
    end
    if type(data.slow_socket) ~= "string" or data.slow_socket == "" then
        error("urlproxy: settings " .. path .. ": slow_socket (the slow path's unix socket) is missing")
    end
    if data.routing ~= "path" and data.routing ~= "host" then
        error("urlproxy: settings " .. path .. ": routing must be \"path\" or \"host\"")
    end
    _M.current = data
    return data
end

return _M
