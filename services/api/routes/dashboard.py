"""The web dashboard: its page and files (no token), and the admin overview it shows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from services.api.auth import require
from services.api.authenticate import ScopedRoute
from services.api.dashboard.assets import ASSETS, PAGE, SECURITY_HEADERS, asset
from services.api.dashboard.overview import Overview, overview
from services.api.database import connection
from services.api.errors import ApiError
from services.api.models import ErrorBody
from services.api.resources import Resources, resources

router = APIRouter(tags=["dashboard"], route_class=ScopedRoute)
PUBLIC = [Depends(require("public"))]
Opened = Annotated[Resources, Depends(resources)]
AssetName = Annotated[str, Path(max_length=64, description="a file of the dashboard")]


def _file(name: str) -> Response:
    body = asset(name)
    if body is None:
        raise ApiError(404, "not_found", "no such dashboard file")
    return Response(body, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get(
    "/dashboard",
    response_class=Response,
    dependencies=PUBLIC,
    summary="The web dashboard (HTML page)",
)
async def dashboard_page() -> Response:
    """Asks for an API key and shows an account (and, to an admin key, the operator
    overview) by calling the JSON routes with it; docs/contracts.md, Dashboard."""
    return _file(PAGE)


@router.get(
    "/dashboard/assets/{name}",
    response_class=Response,
    dependencies=PUBLIC,
    include_in_schema=False,
)
async def dashboard_asset(name: AssetName) -> Response:
    return _file(name)


@router.get(
    "/v1/admin/overview",
    dependencies=[Depends(require("admin"))],
    responses={code: {"model": ErrorBody} for code in (401, 403, 422, 503)},
)
async def get_overview(
    request: Request,
    opened: Opened,
    top: Annotated[int, Query(ge=1, le=100, description="how many top spenders")] = 10,
) -> Overview:
    """Today's top spenders, account counts, pricing and projector lag, rejected usage,
    rejected entries and conflicts: what the dashboard shows an operator."""
    async with connection(opened.pool) as conn:
        return await overview(conn, request.app.state.settings, top)
