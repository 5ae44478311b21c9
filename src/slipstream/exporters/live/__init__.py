"""The live page: one self-contained HTML page, and the JSON it refreshes from, for people without Grafana.

``reading`` turns metric families (an app's registry, or the sidecar's merge of every worker's files) into
cumulative totals; ``history`` keeps a bounded ring of them, one a minute; ``view`` makes the page's JSON from the
ring, the current reading and what only the app process knows (statement texts, callers, Redis state);
``findings`` is the receiver that records what the metrics do not; ``web`` serves the page, its JSON and its login,
on the metrics port, the sidecar's port or a path of the app.
"""
