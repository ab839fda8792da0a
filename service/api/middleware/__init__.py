"""ASGI middleware: the body-size limit, the request observer (ids, access log, metrics) and the scoring
fast path."""
