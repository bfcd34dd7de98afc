"""webservicemonitor: restarts tools whose wanted webservice is not running or not routed."""
