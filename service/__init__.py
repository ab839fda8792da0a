"""logreg-service: train, store, serve and evaluate logistic-regression models over HTTP."""

__version__ = "0.1.0"
