require("urlproxy.metrics").log_slow()
