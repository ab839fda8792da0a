"""Dependencies shared by the routes: the registry and the settings the app was built with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..registry import ModelRegistry
from ..settings import Settings


async def get_registry(request: Request) -> ModelRegistry:
    """Async on purpose: a plain function would cost a thread hop per request."""
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
