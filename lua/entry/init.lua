require("urlproxy_init").init()
