"""The service's web pages, all served from this process with no CDN (the service often runs
where there is no internet: a laptop on a train, a locked-down server):

    GET /                 a demo page: paste readings (or upload an image, for an image model)
                          and see the predicted label and the probabilities
    GET /docs             Swagger UI (try every endpoint)
    GET /redoc            ReDoc (the API reference)
    GET /static/...       the pages' assets: Swagger UI's and ReDoc's from the fastapi-offline
                          package (PyPI), the demo page's own script and style from lab3/static

FastAPI's own /docs and /redoc load their JavaScript from a CDN and are blank offline, so the
application is created with them off (``docs_url=None``) and they are served here instead.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

DOC_ASSETS = Path(str(files("fastapi_offline") / "static"))  # swagger-ui-bundle.js, ...
DEMO_ASSETS = Path(__file__).resolve().parent.parent / "static"  # lab3/static: the demo page
PAGES = ("/", "/docs", "/redoc")


def add_pages(app: FastAPI) -> None:
    """Add the demo page, /docs and /redoc (and their assets) to ``app``."""
    app.mount("/static/docs", StaticFiles(directory=DOC_ASSETS), name="doc-assets")
    app.mount("/static/demo", StaticFiles(directory=DEMO_ASSETS), name="demo-assets")
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/", include_in_schema=False)
    async def demo() -> FileResponse:
        return FileResponse(DEMO_ASSETS / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: API reference",
            redoc_js_url="/static/docs/redoc.standalone.js",
            redoc_favicon_url="/static/docs/favicon.png",
            with_google_fonts=False,
        )
