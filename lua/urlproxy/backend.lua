-- Turning a stored backend URL (`http://10.0.0.5:41234`) into what the balancer needs.
local _M = {}

local re_match = ngx.re.match
local tonumber = tonumber

-- The route store only accepts `http[s]://<IP literal>:<port>`; anything else is refused here too.
local BACKEND = [[^(https?)://(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})/?$]]

-- A peer table {host, port} for set_current_peer, or nil and a reason.
function _M.parse(url)
    if type(url) ~= "string" then
        return nil, "backend is not a string"
    end
    local m = re_match(url, BACKEND, "jo")
    if not m then
        return nil, "backend " .. url .. " is not http[s]://<IP>:<port>"
    end
    local port = tonumber(m[4])
    if port < 1 or port > 65535 then
        return nil, "backend " .. url .. " has no valid port"
    end
    -- set_current_peer wants IPv6 literals in brackets, as in the URL ("::1" alone: "invalid port").
    local host = m[2] and ("[" .. m[2] .. "]") or m[3]
    return { host = host, port = port }
end

return _M
