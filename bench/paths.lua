-- wrk script: spread requests over BENCH_TOOLS tools (/tool0/ ... /toolN-1/), as real traffic does.
local tools = tonumber(os.getenv("BENCH_TOOLS") or "1")
local counter = 0

function request()
    counter = counter + 1
    local tool = (counter * 7919) % tools
    return wrk.format("GET", "/tool" .. tool .. "/index.html")
end
