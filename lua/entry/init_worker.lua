require("urlproxy.startup").init_worker()
