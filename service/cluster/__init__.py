"""Where arms run beyond this process: the operator's cluster settings, Ray's executor, worker and
a local head.

Importing the package registers the `ray` executor (Ray itself is imported only when a run uses it).
"""

from service.cluster import ray_executor  # noqa: F401  (registers "ray")
