require("urlproxy.balancer").route()
