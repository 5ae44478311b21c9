"""Outbound calls: the HTTP requests an app makes to other services, and the LLM API calls among them."""
