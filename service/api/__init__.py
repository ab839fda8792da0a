"""HTTP layer: one router per resource, the body parsing, and the error mapping."""
