-- Turning a stored backend URL (`http://10.0.0.5:41234`) into what the balancer needs, and where
-- this fleet lets a backend be.
--
-- The grammar is the route store's (toolforgectl/core/validate.py `backend()`): `http[s]://`, an IP
-- literal naming one host (not unspecified, multicast, link-local or broadcast; IPv6 in brackets,
-- without a zone) or a DNS name with a domain, an explicit port 1-65535, nothing after it but an
-- optional "/". tests/fixtures/schema.json pins both sides.
--
-- The destination rule is the fleet's (toolforgectl/core/destinations.py): loopback only with
-- `allow_loopback_backends`, never a proxy's own address (`proxy_addresses`) nor its service ports
-- (`proxy_ports`) there or on loopback. It applies to IP literals here and to the addresses host
-- names resolve to (resolver.lua). A route that other writers (redis-cli, an old proxylistener)
-- stored outside either is refused once per URL instead of being tried per request.
local settings = require "urlproxy.settings"

local _M = {}

local re_match = ngx.re.match
local match = string.match
local gmatch = string.gmatch
local find = string.find
local byte = string.byte
local lower = string.lower
local format = string.format
local concat = table.concat
local tonumber = tonumber

local BACKEND = [[^(https?)://(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)|([0-9A-Za-z.-]+)):([0-9]{1,5})/?$]]
local ZERO = byte("0")
local HOST_NAME_MAX = 253
local BACKEND_MAX = 128 -- validate.BACKEND_MAX

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

-- IPv4-mapped IPv6 (::ffff:a.b.c.d) reaches the IPv4 address: its octets, else nil.
local function mapped_octets(groups)
    for i = 1, 5 do
        if groups[i] ~= 0 then
            return nil
        end
    end
    if groups[6] ~= 0xffff then
        return nil
    end
    local g7, g8 = groups[7], groups[8]
    return { (g7 - g7 % 256) / 256, g7 % 256, (g8 - g8 % 256) / 256, g8 % 256 }
end

-- An IP address read for the rules: {text = how proxy_addresses spells it, loopback = bool}, or
-- nil and why no tool can be there. `text` is a dotted quad, or IPv6 in full ("0000:...:0001").
local function classify_v4(o)
    local text = concat(o, ".")
    if o[1] == 0 then
        return nil, "is an unspecified address (0.0.0.0/8, ::)"
    end
    if o[1] >= 224 and o[1] <= 239 then
        return nil, "is a multicast address"
    end
    if o[1] == 169 and o[2] == 254 then
        return nil, "is a link-local address"
    end
    if text == "255.255.255.255" then
        return nil, "is the broadcast address"
    end
    return { text = text, loopback = o[1] == 127 }
end

local function classify(address, is_v6)
    if not is_v6 then
        local octets = ipv4_octets(address)
        if not octets then
            return nil, "is not an IP address"
        end
        return classify_v4(octets)
    end
    local groups = ipv6_groups(address)
    if not groups then
        return nil, "is not an IP address"
    end
    local octets = mapped_octets(groups)
    if octets then
        return classify_v4(octets)
    end
    local text = format("%04x:%04x:%04x:%04x:%04x:%04x:%04x:%04x", unpack(groups))
    if text == "0000:0000:0000:0000:0000:0000:0000:0000" then
        return nil, "is an unspecified address (0.0.0.0/8, ::)"
    end
    if groups[1] >= 0xff00 then -- ff00::/8
        return nil, "is a multicast address"
    end
    if groups[1] >= 0xfe80 and groups[1] <= 0xfebf then -- fe80::/10
        return nil, "is a link-local address"
    end
    return { text = text, loopback = text == "0000:0000:0000:0000:0000:0000:0000:0001" }
end

-- Why `name` is no DNS name a backend may use (as validate.host_name), or nil.
local function bad_name(name)
    if #name > HOST_NAME_MAX then
        return true
    end
    local labels, last = 0, nil
    for label in gmatch(name .. ".", "([^.]*)%.") do
        if #label == 0 or #label > 63 or not match(label, "^[a-z0-9][a-z0-9-]*$") or match(label, "-$") then
            return true
        end
        labels, last = labels + 1, label
    end
    return labels < 2 or match(last, "^%d+$") ~= nil
end

-- The grammar: {scheme, host, port} for an IP literal (IPv6 in brackets, as set_current_peer wants
-- it: "::1" alone is "invalid port"), {scheme, name, port} for a DNS name (lower case); or nil and
-- a reason. The third result is the address read for the destination rule (IP literals only).
local function read(url)
    if type(url) ~= "string" then
        return nil, "backend is not a string"
    end
    if #url > BACKEND_MAX then
        return nil, "backend URL is longer than " .. BACKEND_MAX .. " characters"
    end
    local m = re_match(url, BACKEND, "jo")
    if not m then
        return nil, "backend " .. url .. " is not http[s]://<IP or host name>:<port>"
    end
    local port = tonumber(m[5])
    if port < 1 or port > 65535 then
        return nil, "backend " .. url .. " has no valid port"
    end
    if m[4] then
        local name = lower(m[4])
        if bad_name(name) then
            return nil, "backend " .. url .. ": host is not an IP address nor a DNS name with a domain"
        end
        return { scheme = m[1], name = name, port = port }
    end
    local is_v6 = m[2] and true or false
    local address, why = classify(is_v6 and m[2] or m[3], is_v6)
    if not address then
        return nil, "backend " .. url .. ": host " .. why
    end
    return { scheme = m[1], host = is_v6 and ("[" .. m[2] .. "]") or m[3], port = port }, nil, address
end

-- The grammar only (what Python's validate.backend accepts): the peer, or nil and a reason.
function _M.parse(url)
    local peer, err = read(url)
    return peer, err
end

-- The destination rule's data as sets, built once per settings table.
local rule, rule_of

local function current_rule()
    local conf = settings.current
    if rule_of ~= conf then
        local addresses, ports = {}, {}
        for _, address in ipairs(conf.proxy_addresses) do
            addresses[address] = true
        end
        for _, port in ipairs(conf.proxy_ports) do
            ports[port] = true
        end
        rule = { addresses = addresses, ports = ports, loopback = conf.allow_loopback_backends }
        rule_of = conf
    end
    return rule
end

-- Whether `port` is one of the proxies' service ports.
function _M.service_port(port)
    return current_rule().ports[port] == true
end

-- Why an address (as classify reads it) is no place for a tool in this fleet, or nil; and whether
-- it is "near" (a proxy's or loopback), where the service ports are refused whatever the port.
local function refusal(address, port)
    local r = current_rule()
    local own = r.addresses[address.text] == true
    local near = own or address.loopback
    if near and port and r.ports[port] then
        return "is a proxy's service port", near
    end
    if address.loopback and not r.loopback then
        return "is a loopback address (allow_loopback_backends is off)", near
    end
    if own and not (address.loopback and r.loopback) then
        return "is a proxy's own address", near
    end
    return nil, near
end

-- An address a host name resolved to ("10.0.0.5", "2001:db8::5"): the host for set_current_peer
-- and whether it is near (see refusal: the port is checked per URL), or nil and why not.
function _M.resolved(address)
    local is_v6 = find(address, ":", 1, true) ~= nil
    local read_address, why = classify(address, is_v6)
    if not read_address then
        return nil, why
    end
    local refused, near = refusal(read_address, nil)
    if refused then
        return nil, refused
    end
    return is_v6 and ("[" .. address .. "]") or address, near
end

-- Grammar and destination rule: the peer of a URL that may be used here, or nil and a reason.
-- A host name passes unless it is itself a proxy's address; what it resolves to is checked then.
function _M.usable(url)
    local peer, err, address = read(url)
    if not peer then
        return nil, err
    end
    if peer.name then
        if current_rule().addresses[peer.name] then
            return nil, "backend " .. url .. ": host is a proxy's own address"
        end
        return peer
    end
    local why = refusal(address, peer.port)
    if why then
        return nil, "backend " .. url .. ": host " .. why
    end
    return peer
end

-- Backend URL -> usable peer, per worker: a route's URL is read once, not per request. A plain
-- table (a hit is one lookup), emptied when it holds `peer_cache_size` URLs. `trusted` holds what
-- the operator configured (default_backend): the grammar applies, the destination rule does not
-- (a proxy-local page server is the operator's choice; a tool's route never is).
local peers, count = {}, 0
local trusted = {}

-- The peer of an operator-configured URL (the grammar only), remembered for `peer`; nil, why.
function _M.trust(url)
    local peer, err = _M.parse(url)
    trusted[url] = peer
    return peer, err
end

function _M.peer(url)
    local peer = peers[url] or trusted[url]
    if peer then
        return peer
    end
    local err
    peer, err = _M.usable(url)
    if not peer then
        return nil, err
    end
    count = count + 1
    if count > settings.current.peer_cache_size then
        peers, count = {}, 1
    end
    peers[url] = peer
    return peer
end

-- The address `text` (IPv4 dotted quad, or IPv6 without brackets) as nginx's
-- $binary_remote_addr spells it: 4 or 16 bytes in network order; nil if it is not an address.
function _M.address_bytes(text)
    local octets = ipv4_octets(text)
    if octets then
        return string.char(unpack(octets))
    end
    local groups = find(text, ":", 1, true) and ipv6_groups(text)
    if not groups then
        return nil
    end
    local bytes = {}
    for i, group in ipairs(groups) do
        bytes[2 * i - 1], bytes[2 * i] = math.floor(group / 256), group % 256
    end
    return string.char(unpack(bytes))
end

return _M
