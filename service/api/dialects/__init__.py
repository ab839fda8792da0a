"""The standard serving dialects beside the service's own API, so clients written for other model servers
work unchanged: the V2 / Open Inference Protocol (:mod:`.v2`) and MLflow's scoring server (:mod:`.mlflow`).
Both call the same scoring service as ``/predict`` (same thresholds, calibration, limits, keys, metrics)."""
