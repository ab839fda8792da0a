"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, with their scripts, styles and favicon
served from the package (``/static/vendor``, see its README) rather than a CDN: they work offline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

VENDOR = "/static/vendor"
SWAGGER_JS = f"{VENDOR}/swagger-ui-bundle.js"
SWAGGER_CSS = f"{VENDOR}/swagger-ui.css"
REDOC_JS = f"{VENDOR}/redoc.standalone.js"
FAVICON = f"{VENDOR}/swagger-ui-favicon-32x32.png"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


def _title(request: Request) -> str:
    return str(request.app.title)


def _url(request: Request, path: str) -> str:
    """``path`` under the app's root path (as FastAPI's own docs pages do, for a service behind a proxy prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/") + path


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=_url(request, request.app.openapi_url), title=f"{_title(request)} - Swagger UI",
        swagger_js_url=_url(request, SWAGGER_JS), swagger_css_url=_url(request, SWAGGER_CSS),
        swagger_favicon_url=_url(request, FAVICON), oauth2_redirect_url=_url(request, OAUTH2_REDIRECT),
        # No badge from the online validator: the page asks nothing of any other host.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=_url(request, request.app.openapi_url), title=f"{_title(request)} - ReDoc",
                          redoc_js_url=_url(request, REDOC_JS), redoc_favicon_url=_url(request, FAVICON),
                          with_google_fonts=False)
