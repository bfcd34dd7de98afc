require("urlproxy.routelist").serve()
