require("urlproxy.balancer").balance()
