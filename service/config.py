"""Service settings, read from ``LOGREG_*`` environment variables (pydantic-settings); nothing else."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _memory_bytes() -> int:
    """The machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class Settings(BaseSettings):
    """Every knob of the service; each field's description is what the README's table shows."""

    model_config = SettingsConfigDict(env_prefix="LOGREG_", extra="ignore")

    model_store: Path = Field(Path("model_store"), description="Directory of the model registry.")
    host: str = Field("127.0.0.1", description="Interface `logreg serve` binds to.")
    allowed_hosts: str | None = Field(
        None, description="Comma-separated names the `Host` header may carry (`*`: any); default: the localhost "
        "names when bound to a loopback interface, any otherwise.")
    allowed_origins: str | None = Field(
        None, description="Comma-separated origins (`https://app.example.com`) whose pages may send state-changing "
        "requests; other sites' are refused (403).")
    port: int = Field(8000, ge=1, le=65535, description="Port `logreg serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes for `logreg serve`.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    json_logs: bool = Field(True, description="One JSON object per log line (request logs included).")
    cache_size: int = Field(16, ge=0, description="Loaded model versions kept in memory per process.")
    registry_recheck_seconds: float = Field(
        0.05, ge=0, le=1, description="How long a resolved model is served before the disk is checked again "
        "for changes by other processes (aliases, thresholds, deletes); 0 checks on every request.",
    )
    max_body_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="Largest request body accepted, uploads aside; larger ones get 413."
    )
    compress_min_bytes: int = Field(
        1024, ge=0, description="Smallest response compressed (gzip or deflate) for a client whose "
        "`Accept-Encoding` asks for it; 0 never compresses.",
    )
    max_upload_bytes: int = Field(
        2 * 1024**3, ge=1024, description="Largest `multipart/form-data` training upload (spooled to a temporary "
        "file, never held in memory); larger ones get 413.",
    )
    data_roots: str | None = Field(
        None, description="Directories (separated by `:`) under which `POST /train` may read local paths given "
        "as `data.uri`; unset, no local path is read over HTTP (the CLI reads any path).",
    )
    s3_endpoint_url: str | None = Field(
        None, description="Endpoint of an S3-compatible store (MinIO, ...) for `s3://` URIs; unset: AWS. "
        "Credentials and region come from the standard AWS variables and files.",
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="Time a request's headers may take to arrive (from the connection's opening or the "
        "previous answer); the connection is closed beyond it.")
    body_idle_seconds: float = Field(
        15.0, gt=0, description="Longest pause while a request body streams in; 408 beyond it.")
    body_min_bytes_per_second: float = Field(
        1024.0, ge=0, description="Slowest average rate a request body may arrive at, once it has taken "
        "LOGREG_BODY_IDLE_SECONDS; 408 below it (0: no rate limit).")
    max_open_bodies: int = Field(
        64, ge=1, description="Request bodies one worker reads at once (uploads spooled to disk aside); 503 with "
        "Retry-After beyond, so stalled senders cannot hold the worker's connections.")
    max_body_bytes_in_flight: int = Field(
        200 * 1024 * 1024, ge=1024, description="Bytes of the request bodies one worker is reading at once "
        "(uploads aside); the body that passes it gets 503 with Retry-After.")
    dask_scheduler: str | None = Field(
        None, description="Address of a Dask scheduler (`tcp://scheduler:8786`): `data`-URI trainings then run on "
        "its workers, which read the table themselves (unless a request says `\"compute\": \"local\"`). Needs "
        "the `dask` extra (`pip install 'logreg-service[dask]'`) here and on the workers.",
    )
    dask_connect_timeout_seconds: float = Field(
        10.0, gt=0, le=600, description="How long a training waits for the Dask scheduler to answer (and to have a "
        "worker) before it fails with 503.",
    )
    max_predict_rows: int = Field(100_000, ge=1, description="Most rows in one predict or metrics request (413).")
    max_train_bytes: int = Field(
        default_factory=lambda: _memory_bytes() * 4, ge=1,
        description="Largest training matrix, in bytes of float64 (rows x features x 8), 413 beyond; default four "
        "times the machine's memory (beyond LOGREG_TRAIN_MEMORY_BYTES it trains out of core, from disk).",
    )
    train_memory_bytes: int = Field(
        default_factory=lambda: _memory_bytes() // 4, ge=1,
        description="A training matrix larger than this is kept in a scratch file and trained on block by block "
        "(out of core) instead of in memory; default a quarter of the machine's memory.",
    )
    scratch_dir: Path | None = Field(
        None, description="Where out-of-core training keeps its matrix (removed afterwards, and at the next start "
        "after a crash); default `<model store>/.scratch`.",
    )
    max_iter_limit: int = Field(100_000, ge=1, description="Highest `max_iter` a training request may ask for.")
    api_keys: str | None = Field(
        None, description="Comma-separated API keys; when set, mutating routes need `Authorization: Bearer <key>`."
    )
    api_keys_file: Path | None = Field(
        None, description="File with one API key per line (added to `api_keys`); blank lines and lines starting "
        "with `#` are skipped.")
    protect_reads: bool | None = Field(
        None, description="Require a key for prediction and read routes too (only the probes `/healthz` and "
        "`/readyz`, the dashboard's page and the API docs stay open); default: on whenever keys are set. "
        "`false` opens reads explicitly.")
    protect_monitoring: bool | None = Field(
        None, description="Require a key for the Prometheus scrape `/monitoring/metrics` (scrapers send it as a "
        "bearer token); default: as `protect_reads`.")
    signing_key: SecretStr | None = Field(
        None, description="Secret (at least 32 characters) the registry signs every version and state file with "
        "(HMAC-SHA256); when set, only what it signed is served, and anything else is a 409. `logreg sign` signs a "
        "store written before the key.")
    train_timeout_seconds: float = Field(
        600.0, gt=0, description="Wall-clock limit of one training run; it stops cleanly and stores nothing."
    )
    max_concurrent_trainings: int = Field(
        2, ge=1, description="Trainings running at once across all workers sharing the registry (429 beyond)."
    )
    job_retention: float = Field(
        7 * 86400.0, gt=0, description="Seconds a finished job's record (and its Idempotency-Key) is kept; "
        "default 7 days.")
    max_finished_jobs: int = Field(1000, ge=1, description="Finished job records kept at most; the oldest go first.")
    background_train_cells: int = Field(
        2_000_000, ge=1, description="Training sets with more rows x features run as background jobs by default."
    )
    prometheus_dir: Path | None = Field(
        None, description="Where several workers share Prometheus samples (made and emptied by `logreg serve`; "
        "one worker keeps them in memory)."
    )
    drift_window_rows: int = Field(
        1000, ge=0, le=100_000, description="Recent predicted rows per model version in each worker's sliding "
        "window for the population stability index (PSI) of every feature; 0 turns the window off.",
    )
    invocations_model: str | None = Field(
        None, description="The model a bare MLflow `POST /invocations` (no `?model=`) serves: a name, optionally "
        "`name@alias` or `name/version`; unset, it is the registry's only model.",
    )
    demo: bool = Field(False, description="Train the `breast-cancer` demo model at start-up if the registry is empty.")

    def host_names(self) -> list[str] | None:
        """The names ``Host`` may carry, or None for any (see ``allowed_hosts``)."""
        if self.allowed_hosts is not None:
            names = [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]
            return None if "*" in names else names
        if self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127."):
            return ["localhost", "127.0.0.1", "::1", self.host]
        return None

    def origin_list(self) -> list[str]:
        """The origins of ``allowed_origins``."""
        return [o.strip() for o in (self.allowed_origins or "").split(",") if o.strip()]

    def scratch_path(self) -> Path:
        """The scratch directory of out-of-core training."""
        return self.scratch_dir if self.scratch_dir is not None else self.model_store / ".scratch"

    def data_root_paths(self) -> list[Path]:
        """The directories of ``data_roots``; empty when unset."""
        return [Path(p) for p in (self.data_roots or "").split(os.pathsep) if p.strip()]

    def keys(self) -> list[str]:
        """The configured API keys, from ``api_keys`` and ``api_keys_file`` (comments, blank lines and a UTF-8
        byte-order mark skipped); empty means open access. A :class:`ConfigurationError` for a key shorter than
        :data:`MIN_API_KEY_LENGTH` or a file that cannot be read, so the service does not start half-guarded."""
        keys = [k.strip() for k in (self.api_keys or "").split(",") if k.strip()]
        if self.api_keys_file is not None:
            try:
                text = self.api_keys_file.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigurationError(f"LOGREG_API_KEYS_FILE cannot be read: {exc}") from None
            keys += [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
        short = [i for i, k in enumerate(keys) if len(k) < MIN_API_KEY_LENGTH]
        if short:
            raise ConfigurationError(
                f"{len(short)} API key(s) are shorter than {MIN_API_KEY_LENGTH} characters (LOGREG_API_KEYS / "
                f"LOGREG_API_KEYS_FILE); use long random keys, e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`")
        return keys

    def signing_key_bytes(self) -> bytes | None:
        """The registry's signing key, or None; a :class:`ConfigurationError` for one shorter than
        :data:`MIN_SIGNING_KEY_LENGTH`, so a guessable key never signs anything."""
        if self.signing_key is None:
            return None
        key = self.signing_key.get_secret_value().strip()
        if len(key) < MIN_SIGNING_KEY_LENGTH:
            raise ConfigurationError(
                f"LOGREG_SIGNING_KEY is shorter than {MIN_SIGNING_KEY_LENGTH} characters; use a long random "
                "secret, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        return key.encode()

    def reads_protected(self, keys: list[str]) -> bool:
        """Whether read routes need a key: ``protect_reads`` when set, else whenever there are ``keys``."""
        return bool(keys) if self.protect_reads is None else self.protect_reads and bool(keys)

    def monitoring_protected(self, keys: list[str]) -> bool:
        """Whether the Prometheus scrape needs a key: ``protect_monitoring`` when set, else as reads."""
        if self.protect_monitoring is None:
            return self.reads_protected(keys)
        return self.protect_monitoring and bool(keys)


#: Shortest API key accepted: shorter ones are guessable.
MIN_API_KEY_LENGTH = 16
#: Shortest signing key accepted (an HMAC key should hold about as many random bits as its hash).
MIN_SIGNING_KEY_LENGTH = 32


class ConfigurationError(Exception):
    """A setting that cannot work; the service refuses to start and says which."""


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
