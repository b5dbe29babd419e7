"""API keys (admin): create one (its secret is shown only in that answer), list, revoke."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path

from services.api.auth import require
from services.api.authenticate import ScopedRoute
from services.api.database import connection
from services.api.errors import ApiError
from services.api.keys import store
from services.api.models import CreatedKey, ErrorBody, KeyInfo, KeyList, KeyRequest, RevokedKey
from services.api.resources import Resources, resources

router = APIRouter(
    prefix="/v1/keys",
    tags=["keys"],
    dependencies=[Depends(require("admin"))],
    route_class=ScopedRoute,
)
Opened = Annotated[Resources, Depends(resources)]
KeyId = Annotated[UUID, Path(description="the key_id from POST /v1/keys")]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 422, 503)
}


# 400: a body that cannot be decoded at all; 413: over the body limit (services/api/limits.py).
@router.post(
    "", status_code=201, responses={**ERRORS, 400: {"model": ErrorBody}, 413: {"model": ErrorBody}}
)
async def post_key(body: KeyRequest, opened: Opened) -> CreatedKey:
    """A new key; `secret` (`lk_...`) is in this answer only: only its hash is stored."""
    async with connection(opened.pool) as conn:
        return await store.create_key(conn, body)


@router.get("", responses=ERRORS)
async def get_keys(opened: Opened) -> KeyList:
    """Every key, revoked ones included, oldest first; never a secret. `last_used_at`
    includes this process's uses not yet written (each process writes them every few
    seconds)."""
    async with connection(opened.pool) as conn:
        listed = await store.list_keys(conn)
    return KeyList(keys=[with_unflushed_use(key, opened) for key in listed])


def with_unflushed_use(key: KeyInfo, opened: Resources) -> KeyInfo:
    pending = opened.keys.last_used(key.key_id)
    if pending is None or (key.last_used_at is not None and key.last_used_at >= pending):
        return key
    return key.model_copy(update={"last_used_at": pending})


@router.delete("/{key_id}", responses={**ERRORS, 404: {"model": ErrorBody}})
async def delete_key(key_id: KeyId, opened: Opened) -> RevokedKey:
    """Revokes the key on every API process at once; revoking again answers the same
    revoked_at. 404 `key_not_found`."""
    async with connection(opened.pool) as conn:
        revoked = await store.revoke_key(conn, key_id)
    if revoked is None:
        raise ApiError(404, "key_not_found", f"no API key {key_id}")
    opened.keys.forget(str(key_id))  # this process need not wait for its own notification
    return revoked
