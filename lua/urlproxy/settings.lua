-- The data plane's settings: the JSON file `toolforgectl render` writes beside the nginx config.
-- nginx.conf names the file with `env TOOLFORGECTL_URLPROXY_SETTINGS=<path>`; templates never splice Lua.
local cjson = require "cjson.safe"

local _M = {}

local ENV_NAME = "TOOLFORGECTL_URLPROXY_SETTINGS"

-- Every knob the Lua reads, with the value used when the file leaves it out. Each is a `dataplane:`
-- setting of the same name and default (toolforgectl/core/config/dataplane.py), which render
-- passes; tests/fixtures/schema.json pins both copies.
_M.DEFAULTS = {
    routing = "path",
    default_backend = "", -- none: unknown tools get 503
    maintenance = false,
    redis_timeout_ms = 100,
    redis_keepalive_ms = 60000,
    redis_pool_size = 32,
    redis_backoff_ms = 250,
    redis_backoff_max_ms = 5000,
    watcher_ping_ms = 1000,
    cache_ttl = 60,
    worker_cache_size = 20000,
    peer_cache_size = 10000,
    list_scan_count = 1000,
    error_log_interval = 10,
    block_empty_user_agent = false, -- true: requests without a User-Agent get 403, as the original's
    metrics = true, -- false: no log phase counts requests (the template renders none)
    metrics_tools = 2000, -- tools with their own label in /metrics; the rest count as tool="_other"
    metrics_flush_ms = 1000, -- how often each worker adds its counts to the shared counters
    max_routes_per_tool = 16, -- a tool with more routes in Redis is routed by the first ones
    canonical_domain = "", -- none: `redirect:<tool>` keys are not served
    client_ip = "hidden", -- or "forwarded": the template then gives every tool the address
    client_ip_forwarded_tools = {}, -- with "hidden": tools that get the client's address anyway
    allow_loopback_backends = false,
    resolver = "", -- none: the nameservers of /etc/resolv.conf
    resolver_timeout_ms = 500,
    resolver_min_ttl = 5,
    resolver_max_ttl = 300,
}

-- What differs per proxy (its own Redis, its run dir) or follows from the whole fleet config (the
-- proxies' addresses and service ports, for backend.lua's destination rule; the domains of a host
-- mode server_name): render always writes these.
_M.REQUIRED = {
    redis_host = "string",
    redis_port = "number",
    redis_db = "number",
    slow_socket = "string",
    proxy_addresses = "table",
    proxy_ports = "table",
    host_domains = "table", -- host mode: ".toolforge.org" for server_name `*.toolforge.org`
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

-- What is wrong with `value` as the setting `key` of type `kind`, or nil. Knobs must be positive
-- (a zero PING interval would spin the watcher); per-proxy numbers (redis_db) may be 0.
local function wrong(key, value, kind, knob)
    if type(value) ~= kind then
        return key .. " must be a " .. kind .. ", not " .. type(value)
    end
    if kind == "number" and (value < 0 or knob and value == 0) then
        return key .. " must be " .. (knob and "positive" or "0 or more")
    end
    if kind == "string" and not knob and value == "" then
        return key .. " must not be empty"
    end
    return nil
end

-- The settings `data` (decoded JSON) with defaults filled in, or nil and what is wrong with them.
-- Pure (no file, no module state), so the rules are unit-tested without nginx.
function _M.checked(data)
    if type(data) ~= "table" then
        return nil, "not a JSON object"
    end
    for key, default in pairs(_M.DEFAULTS) do
        if data[key] == nil or data[key] == cjson.null then
            data[key] = default
        end
        local err = wrong(key, data[key], type(default), true)
        if err then
            return nil, err
        end
    end
    for key, kind in pairs(_M.REQUIRED) do
        local err = wrong(key, data[key], kind, false)
        if err then
            return nil, err
        end
    end
    if data.routing ~= "path" and data.routing ~= "host" then
        return nil, "routing must be \"path\" or \"host\""
    end
    if data.client_ip ~= "hidden" and data.client_ip ~= "forwarded" then
        return nil, "client_ip must be \"hidden\" or \"forwarded\""
    end
    for _, domain in ipairs(data.host_domains) do
        if type(domain) ~= "string" or domain:sub(1, 1) ~= "." then
            return nil, "host_domains must list domains that start with \".\""
        end
    end
    for _, tool in ipairs(data.client_ip_forwarded_tools) do
        if type(tool) ~= "string" then
            return nil, "client_ip_forwarded_tools must list tool names"
        end
    end
    return data
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
    local data
    data, err = _M.checked(cjson.decode(text))
    if not data then
        error("urlproxy: settings " .. path .. ": " .. err)
    end
    _M.current = data
    return data
end

return _M
