require("urlproxy.startup").init()
