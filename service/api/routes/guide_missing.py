"""``/guide`` before the guide is built: say how to build it (the app serves the built guide there instead)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter(include_in_schema=False)

GUIDE_MISSING = ("The guide has not been built into this installation. Build it from a checkout with `make docs` "
                 "(MkDocs: `mkdocs build --strict`, into service/static/guide), then restart; it is also in docs/ "
                 "as Markdown. The Docker image always has it.\n")


@router.get("/guide", response_class=PlainTextResponse)
@router.get("/guide/{path:path}", response_class=PlainTextResponse)
async def guide_missing(path: str = "") -> PlainTextResponse:
    return PlainTextResponse(GUIDE_MISSING, status_code=404)
