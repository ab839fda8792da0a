"""Use cases with no HTTP: training, scoring, thresholds, drift and explanations. The routes, the
dialects, the scoring fast path and the CLI all call these, so they answer, check and count alike."""
