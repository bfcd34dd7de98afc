"""The long-running services: proxylistener, kube2proxy, webservicemonitor, and the client side."""
