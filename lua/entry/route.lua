require("balancer").route()
