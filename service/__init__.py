"""Running AdaptLab as a service: jobs and the worker, owners and quotas, saved corpora, executors,
estimates, tracking."""
