require("urlproxy.routeversion").serve()
