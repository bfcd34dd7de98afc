require("urlproxy_init").init_worker()
