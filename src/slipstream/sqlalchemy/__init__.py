"""SQLAlchemy event hooks: query latency, slow queries, N+1 detection, pool metrics, statement fingerprints."""
