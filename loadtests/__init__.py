"""Load and soak runs against a live gateway (``make loadtest``, ``make soak``).

    server.py      start / stop a local ``citer serve`` (embedded store, demo models)
    tenants.py     create the runs' tenants through the admin API
    common.py      prompts (task suite), the routing-policy mix, SSE parsing
    locustfile.py  Locust users: streaming chat on several tenants + budget exhaustion
    run.py         ``make loadtest``: gateway + tenants + headless Locust -> CSV + HTML
    soak.py        ``make soak``: steady load with random disconnects, then soak_check.py

Only locustfile.py imports locust (it monkey-patches the process with gevent);
the other modules stay importable from tests.
"""
