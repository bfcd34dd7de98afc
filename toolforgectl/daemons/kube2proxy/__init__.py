"""kube2proxy: keeps the routes of Kubernetes-hosted tools in step with their Services."""
