"""Real loopback servers for the integration tests and benchmarks.

Importing this package is cheap: each helper lives in its own module
(``idp``, ``faults``, ``echo``, ``forward_proxy``) and ``fixtures`` is the pytest plugin.
"""
