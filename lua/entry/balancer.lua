require("balancer").balance()
