-- Turning a stored backend URL (`http://10.0.0.5:41234`) into what the balancer needs.
--
-- The grammar is the route store's (toolforgectl/core/validate.py `backend()`): `http[s]://`, an IP
-- literal naming one host (not unspecified, not multicast; IPv6 in brackets, without a zone), an
-- explicit port 1-65535, nothing after it but an optional "/". A route that other writers (redis-cli,
-- an old proxylistener) stored outside it is refused here, once per URL, instead of reaching
-- set_current_peer and failing every request. tests/fixtures/schema.json pins both sides.
local _M = {}

local re_match = ngx.re.match
local match = string.match
local gmatch = string.gmatch
local find = string.find
local byte = string.byte
local tonumber = tonumber

local BACKEND = [[^(https?)://(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})/?$]]
local ZERO = byte("0")

-- The four octets of a dotted-quad IPv4 address (no leading zeros, as Python's ipaddress), or nil.
local function ipv4_octets(text)
    local octets = { match(text, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
    if #octets ~= 4 then
        return nil
    end
    for i, octet in ipairs(octets) do
        if #octet > 3 or (#octet > 1 and byte(octet, 1) == ZERO) or tonumber(octet) > 255 then
            return nil
        end
        octets[i] = tonumber(octet)
    end
    return octets
end

-- Append the 16-bit groups of `part` ("1:a:ffff", possibly empty) to `into`; false if one is not hex.
local function add_groups(part, into)
    if part == "" then
        return true
    end
    for group in gmatch(part .. ":", "([^:]*):") do
        if not match(group, "^%x%x?%x?%x?$") then
            return false
        end
        into[#into + 1] = tonumber(group, 16)
    end
    return true
end

-- The eight 16-bit groups of an IPv6 address (with at most one "::" and an optional trailing
-- dotted quad), or nil.
local function ipv6_groups(text)
    local head, quad = match(text, "^(.*:)(%d+%.[%d.]*)$")
    if quad then
        local o = ipv4_octets(quad)
        if not o then
            return nil
        end
        text = ("%s%x:%x"):format(head, o[1] * 256 + o[2], o[3] * 256 + o[4])
    end
    local left, right = match(text, "^(.-)::(.*)$")
    local groups, tail = {}, {}
    if not left then
        return add_groups(text, groups) and #groups == 8 and groups or nil
    end
    if find(right, "::", 1, true) or not add_groups(left, groups) or not add_groups(right, tail) then
        return nil
    end
    if #groups + #tail > 7 then
        return nil
    end
    for _ = 1, 8 - #groups - #tail do
        groups[#groups + 1] = 0
    end
    for _, group in ipairs(tail) do
        groups[#groups + 1] = group
    end
    return groups
end

-- Why `address` names no single host, or nil when it does.
local function unusable(address, is_v6)
    local parts, multicast
    if is_v6 then
        parts = ipv6_groups(address)
        multicast = parts and parts[1] >= 0xff00 -- ff00::/8
    else
        parts = ipv4_octets(address)
        multicast = parts and parts[1] >= 224 and parts[1] <= 239 -- 224.0.0.0/4
    end
    if not parts then
        return "is not an IP address"
    end
    if multicast then
        return "is a multicast address"
    end
    for _, part in ipairs(parts) do
        if part ~= 0 then
            return nil
        end
    end
    return "is the unspecified address"
end

-- A peer table {scheme, host, port} for set_current_peer (IPv6 hosts in brackets, as it wants
-- them: "::1" alone is "invalid port"), or nil and a reason.
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
    local is_v6 = m[2] and true or false
    local why = unusable(is_v6 and m[2] or m[3], is_v6)
    if why then
        return nil, "backend " .. url .. ": host " .. why
    end
    return { scheme = m[1], host = is_v6 and ("[" .. m[2] .. "]") or m[3], port = port }
end

return _M
