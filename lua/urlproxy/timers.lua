-- A worker's recurring jobs (the metrics flush, the refresh of old route entries): each run's
-- error is caught and logged, rate-limited, so one failing run never stops the ones after it.
local redisconn = require "urlproxy.redisconn"

local _M = {}

-- Run `job` every `seconds` in this worker. `what` names it in the log ("flush metrics");
-- `at_exit`: run it once more when the worker exits (premature), so its last work is not lost.
-- One run at a time: ngx.timer.every starts the next run on time even while the last still waits
-- (on Redis, say), and two runs would do the same work twice; a run due meanwhile is skipped.
function _M.every(seconds, what, job, at_exit)
    local running = false
    local function run(premature)
        if (premature and not at_exit) or running then
            return
        end
        running = true
        local ok, err = pcall(job)
        running = false
        if not ok then
            redisconn.log_error("cannot " .. what .. ": " .. tostring(err))
        end
    end
    local ok, err = ngx.timer.every(seconds, run)
    if not ok then
        ngx.log(ngx.ERR, "urlproxy: cannot start the timer to ", what, ": ", err)
    end
end

return _M
