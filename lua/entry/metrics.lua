require("urlproxy.metrics").serve()
