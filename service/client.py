"""A small typed client for other services, on httpx. Our end-to-end tests use it, so it tracks the server."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

Label = int | bool | str
Rows = Sequence[Sequence[float]]
Records = Sequence[Mapping[str, float]]


class LogregAPIError(Exception):
    """The server answered with an error; carries its status, type, message and details."""

    def __init__(self, status_code: int, type: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status_code} {type}: {message}")
        self.status_code = status_code
        self.type = type
        self.message = message
        self.details = details


class LogregClient:
    """Calls a logreg-service over HTTP: ``LogregClient("http://127.0.0.1:8000").predict("m", features=...)``."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 60.0,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LogregClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------------------
    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http.request(method, url, **kwargs)
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                raise LogregAPIError(response.status_code, err.get("type", "error"), err.get("message", ""),
                                     err.get("details"))
            except (ValueError, KeyError, TypeError):
                raise LogregAPIError(response.status_code, "http_error", response.text[:500]) from None
        return response.json() if response.content else None

    @staticmethod
    def _rows(features: Rows | None, records: Records | None) -> dict[str, Any]:
        if (features is None) == (records is None):
            raise ValueError("give exactly one of features and records")
        if features is not None:
            rows = features.tolist() if hasattr(features, "tolist") else [list(map(float, r)) for r in features]
            return {"features": rows}
        return {"records": [dict(r) for r in records or []]}

    # -- training -----------------------------------------------------------------------------------------
    def train(
        self,
        model: str,
        *,
        labels: Sequence[Label],
        features: Rows | None = None,
        records: Records | None = None,
        feature_names: Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None,
        validation_fraction: float = 0.2,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        calibration: str = "none",
    ) -> dict[str, Any]:
        """Train a new version from rows or records; returns the training report. ``calibration``:
        ``"platt"`` or ``"isotonic"`` calibrates a binary model's probabilities on the validation split."""
        body: dict[str, Any] = {
            "model": model,
            **self._rows(features, records),
            "labels": labels.tolist() if hasattr(labels, "tolist") else list(labels),
            "params": dict(params or {}),
            "validation_fraction": validation_fraction,
            "tags": dict(tags or {}),
            "calibration": calibration,
        }
        if feature_names is not None:
            body["feature_names"] = list(feature_names)
        if description is not None:
            body["description"] = description
        return self._request("POST", "/train", json=body)

    def train_csv(
        self,
        model: str,
        path: str | Path,
        target: str,
        *,
        params: Mapping[str, Any] | None = None,
        validation_fraction: float = 0.2,
        calibration: str = "none",
    ) -> dict[str, Any]:
        """Train a new version from a CSV file with a header row; ``target`` names the label column."""
        import json

        path = Path(path)
        data = {"model": model, "target": target, "validation_fraction": str(validation_fraction),
                "calibration": calibration}
        if params:
            data["params"] = json.dumps(dict(params))
        with path.open("rb") as fh:
            return self._request("POST", "/train", data=data, files={"file": (path.name, fh, "text/csv")})

    def train_background(
        self,
        model: str,
        *,
        labels: Sequence[Label],
        features: Rows | None = None,
        records: Records | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Start a background training job (``train``'s options); returns the job, polled with ``job``."""
        body: dict[str, Any] = {
            "model": model,
            **self._rows(features, records),
            "labels": labels.tolist() if hasattr(labels, "tolist") else list(labels),
            **options,
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request("POST", "/train", params={"background": "true"}, json=body, headers=headers)

    def job(self, job_id: str) -> dict[str, Any]:
        """A background job's state, progress and, once it succeeded, its training report."""
        return self._request("GET", f"/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/jobs/{job_id}")

    def wait_for_job(self, job_id: str, timeout: float = 600.0, poll: float = 0.25) -> dict[str, Any]:
        """Poll a job until it ends (succeeded, failed or cancelled) or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(poll)

    # -- serving ------------------------------------------------------------------------------------------
    def predict_proba(
        self, model: str, *, features: Rows | None = None, records: Records | None = None,
        version: int | str | None = None, explain: bool = False,
    ) -> dict[str, Any]:
        """Probabilities per class: ``{"classes": [...], "probabilities": [[...], ...]}`` (and ``explanations``
        per row with ``explain=True``)."""
        body = {"model": model, "version": version, **self._rows(features, records)}
        return self._request("POST", "/predict_proba", json=body, params={"explain": "true"} if explain else None)

    def predict(
        self, model: str, *, features: Rows | None = None, records: Records | None = None,
        version: int | str | None = None, threshold: float | None = None, explain: bool = False,
    ) -> dict[str, Any]:
        """Class labels: ``{"predictions": [...], "threshold": t}`` (and ``explanations`` per row with
        ``explain=True``: contributions to the logit, top reasons, single-feature flips)."""
        body = {"model": model, "version": version, **self._rows(features, records)}
        params: dict[str, Any] = {"threshold": threshold} if threshold is not None else {}
        if explain:
            params["explain"] = "true"
        return self._request("POST", "/predict", json=body, params=params or None)

    def metrics(
        self, model: str, *, labels: Sequence[Label], features: Rows | None = None,
        records: Records | None = None, version: int | str | None = None, threshold: float | None = None,
    ) -> dict[str, Any]:
        """Evaluation metrics of a version on labelled rows."""
        body = {
            "model": model, "version": version, **self._rows(features, records),
            "labels": labels.tolist() if hasattr(labels, "tolist") else list(labels),
        }
        if threshold is not None:
            body["threshold"] = threshold
        return self._request("POST", "/metrics", json=body)

    def stored_metrics(self, model: str, version: int | str | None = None) -> dict[str, Any]:
        """The metrics recorded on the validation split when the version was trained."""
        params = {"model": model, **({"version": str(version)} if version is not None else {})}
        return self._request("GET", "/metrics", params=params)

    # -- registry -----------------------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """Every model with its latest version and aliases."""
        return self._request("GET", "/models")["models"]

    def versions(self, model: str) -> list[dict[str, Any]]:
        """The versions of one model."""
        return self._request("GET", f"/models/{model}")["versions"]

    def model_card(self, model: str, version: int | str) -> dict[str, Any]:
        """Hyperparameters, coefficients, metrics and provenance of a version (a number or an alias)."""
        return self._request("GET", f"/models/{model}/versions/{version}")

    def drift(self, model: str, version: int | str) -> dict[str, Any]:
        """PSI per feature over recent predictions and out-of-range counts, as the answering worker sees them."""
        return self._request("GET", f"/models/{model}/versions/{version}/drift")

    def set_alias(self, model: str, alias: str, version: int) -> dict[str, Any]:
        """Point ``alias`` (e.g. ``"production"``) at ``version``."""
        return self._request("PUT", f"/models/{model}/aliases/{alias}", json={"version": version})

    def delete_alias(self, model: str, alias: str) -> None:
        self._request("DELETE", f"/models/{model}/aliases/{alias}")

    def set_threshold(self, model: str, version: int, threshold: float | None) -> dict[str, Any]:
        """Store a binary version's default decision threshold (None restores 0.5)."""
        return self._request("PUT", f"/models/{model}/versions/{version}/threshold", json={"threshold": threshold})

    def optimize_threshold(
        self, model: str, version: int | str, objective: str, *, cost: Mapping[str, float] | None = None,
        target: float | None = None, labels: Sequence[Label] | None = None, features: Rows | None = None,
        records: Records | None = None, store: bool = False,
    ) -> dict[str, Any]:
        """The best decision threshold for ``objective`` (``f1``, ``youden``, ``cost``, ``min_recall``,
        ``min_precision``) on the stored validation split, or on ``labels`` with ``features``/``records``;
        ``store=True`` also makes it the version's default."""
        body: dict[str, Any] = {"objective": objective, "store": store}
        if cost is not None:
            body["cost"] = dict(cost)
        if target is not None:
            body["target"] = target
        if labels is not None:
            body["data"] = {**self._rows(features, records),
                            "labels": labels.tolist() if hasattr(labels, "tolist") else list(labels)}
        return self._request("POST", f"/models/{model}/versions/{version}/threshold:optimize", json=body)

    def delete_version(self, model: str, version: int) -> None:
        self._request("DELETE", f"/models/{model}/versions/{version}")

    def health(self) -> dict[str, Any]:
        """The liveness answer, ``{"status": "ok", "pid": ...}``; raises when the server does not answer."""
        return self._request("GET", "/healthz")

    def ready(self) -> dict[str, Any]:
        return self._request("GET", "/readyz")
