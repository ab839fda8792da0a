"""Service settings, read from ``LOGREG_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; each field's description is what the README's table shows."""

    model_config = SettingsConfigDict(env_prefix="LOGREG_", extra="ignore")

    model_store: Path = Field(Path("model_store"), description="Directory of the model registry.")
    host: str = Field("127.0.0.1", description="Interface `logreg serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `logreg serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes for `logreg serve`.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    cache_size: int = Field(16, ge=0, description="Loaded model versions kept in memory per process.")
    max_body_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="Largest request body accepted; larger ones get 413."
    )
    max_predict_rows: int = Field(100_000, ge=1, description="Most rows in one predict or metrics request (413).")
    max_train_cells: int = Field(
        20_000_000, ge=1, description="Most rows x features in one training set (413)."
    )
    max_iter_limit: int = Field(100_000, ge=1, description="Highest `max_iter` a training request may ask for.")
    demo: bool = Field(False, description="Train the `breast-cancer` demo model at start-up if the registry is empty.")
    write_delay: float = Field(
        0.0, ge=0.0, description="Test only: seconds to pause inside each artefact write (crash tests)."
    )


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
