"""The HTTP layer: routes, dialects, middleware, the typed dependencies and the one error mapping.

Nothing here computes or decides: routes parse the request at the edge, call a service, and answer.
"""
