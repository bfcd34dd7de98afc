-- timers.lua: a worker's recurring jobs keep running after a failing run, and run at exit only when asked.
local unit = require "unit"
local case, eq, check, shim = unit.case, unit.eq, unit.check, unit.shim

case("a run that fails is logged and the next run still happens", function()
    local timers = require "urlproxy.timers"
    local runs = 0
    timers.every(1, "count things", function()
        runs = runs + 1
        if runs == 1 then
            error("the first run breaks")
        end
    end)
    shim.fire_timers()
    shim.fire_timers()
    eq(runs, 2, "runs after a failing one")
    eq(#shim.logged("cannot count things: ", ngx.ERR), 1, "the failure is logged once, with what failed")
    check(shim.logged("the first run breaks")[1] ~= nil, "the error itself is in the line")
end)

case("when the worker exits, a job runs once more only if it asked to", function()
    local timers = require "urlproxy.timers"
    local flushed, refreshed = 0, 0
    timers.every(1, "flush", function()
        flushed = flushed + 1
    end, true)
    timers.every(1, "refresh", function()
        refreshed = refreshed + 1
    end)
    shim.fire_timers(true)
    eq({ flushed, refreshed }, { 1, 0 }, "runs at exit (flush asked to, refresh did not)")
end)

case("a run still going when its timer fires again is skipped, not run twice at once", function()
    local timers = require "urlproxy.timers"
    local runs, nested = 0, nil
    timers.every(1, "refresh", function()
        runs = runs + 1
        if runs == 1 then
            nested = shim.fire_timers() -- as nginx would, while this run waits on a socket
        end
    end)
    shim.fire_timers()
    eq({ runs, nested }, { 1, 1 }, "runs (the timer fired during the first run)")
    shim.fire_timers()
    eq(runs, 2, "runs once the first returned")
end)
