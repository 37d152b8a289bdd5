"""
The server's HTTP face, on the listener C{--http} opens: Prometheus
metrics (L{metrics}), health checks for load balancers and orchestrators
(L{health}), and the site that serves them (L{site}).

It reads the job server through the same query methods as the admin
protocol, and never changes it.
"""
