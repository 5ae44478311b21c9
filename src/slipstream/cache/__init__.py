"""The response cache: HTTP caching policy, keys, entries, stores, coalescing and the @cached decorator."""
