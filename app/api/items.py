"""/api/v1/items: create, list (limit/offset), get and delete items stored in PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.db import Database
from app.errors import AppError, error_responses
from app.models import DESCRIPTION_MAX, NAME_MAX
from app.security import require_api_key

PREFIX = "/api/v1/items"
MAX_LIMIT = 100
# Deep OFFSET scans are linear in the offset; past this, clients should narrow their query.
MAX_OFFSET = 1_000_000
# Item ids are PostgreSQL bigints; a larger path value would be a database error, not a 404.
MAX_ID = 2**63 - 1
NO_NUL = "^[^\\x00]*$"


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The pattern documents the NUL rule below in the schema; the validator enforces it.
    name: str = Field(min_length=1, max_length=NAME_MAX, json_schema_extra={"pattern": NO_NUL})
    description: str | None = Field(
        default=None, max_length=DESCRIPTION_MAX, json_schema_extra={"pattern": NO_NUL}
    )

    @field_validator("name", "description")
    @classmethod
    def _storable_text(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8:
        # reject both as validation errors instead of failing in the database.
        if value is None:
            return value
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text") from None
        return value


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    created_at: datetime


class ItemPage(BaseModel):
    items: list[ItemOut]
    total: int
    limit: int
    offset: int


# Each operation is one statement, atomic on its own, run outside a transaction (asyncpg's
# default): no BEGIN and COMMIT round trips. The list's count and page are two statements on one
# connection; under READ COMMITTED they see separate snapshots with or without a transaction.
_COLUMNS = "id, name, description, created_at"
INSERT_ITEM = f"INSERT INTO items (name, description) VALUES ($1, $2) RETURNING {_COLUMNS}"
COUNT_ITEMS = "SELECT count(*) FROM items"
LIST_ITEMS = f"SELECT {_COLUMNS} FROM items ORDER BY id LIMIT $1 OFFSET $2"
GET_ITEM = f"SELECT {_COLUMNS} FROM items WHERE id = $1"
DELETE_ITEM = "DELETE FROM items WHERE id = $1 RETURNING id"


async def get_db(request: Request) -> Database:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per request.
    resources = request.app.state.runtime.resources
    if resources is None:
        raise AppError(503, "not_ready", "The service is starting or shutting down")
    return resources.db


Db = Annotated[Database, Depends(get_db)]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
# Every items route may answer 429 (rate limit), 503 (PostgreSQL or the limiter's Redis down)
# and 422 (invalid path, query or body); documenting them lets clients rely on the envelope.
_ALWAYS = (422, 429, 503)


def _not_found(item_id: int) -> AppError:
    return AppError(404, "not_found", f"Item {item_id} not found", {"id": item_id})


async def create_item(payload: ItemIn, db: Db) -> ItemOut:
    async with db.connection() as connection:
        row = await connection.fetchrow(INSERT_ITEM, payload.name, payload.description)
    return ItemOut(**row)


async def list_items(
    db: Db,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ItemPage:
    async with db.connection() as connection:
        total = await connection.fetchval(COUNT_ITEMS)
        rows = await connection.fetch(LIST_ITEMS, limit, offset)
    return ItemPage(items=[ItemOut(**row) for row in rows], total=total, limit=limit, offset=offset)


async def get_item(item_id: ItemId, db: Db) -> ItemOut:
    async with db.connection() as connection:
        row = await connection.fetchrow(GET_ITEM, item_id)
    if row is None:
        raise _not_found(item_id)
    return ItemOut(**row)


async def delete_item(item_id: ItemId, db: Db) -> Response:
    async with db.connection() as connection:
        deleted = await connection.fetchval(DELETE_ITEM, item_id)
    if deleted is None:
        raise _not_found(item_id)
    return Response(status_code=204)


def register(app: FastAPI) -> None:
    # Routes go straight onto the app so `app.routes` lists them with their full path templates.
    auth = [Depends(require_api_key)]
    tags: list[str | Enum] = ["items"]
    app.add_api_route(
        PREFIX,
        create_item,
        methods=["POST"],
        status_code=201,
        response_model=ItemOut,
        dependencies=auth,
        # 400: a body that is not valid UTF-8 cannot be parsed as JSON at all.
        responses=error_responses(400, 401, 413, *_ALWAYS),
        tags=tags,
    )
    app.add_api_route(
        PREFIX,
        list_items,
        methods=["GET"],
        response_model=ItemPage,
        responses=error_responses(*_ALWAYS),
        tags=tags,
    )
    app.add_api_route(
        f"{PREFIX}/{{item_id}}",
        get_item,
        methods=["GET"],
        response_model=ItemOut,
        responses=error_responses(404, *_ALWAYS),
        tags=tags,
    )
    app.add_api_route(
        f"{PREFIX}/{{item_id}}",
        delete_item,
        methods=["DELETE"],
        status_code=204,
        response_class=Response,
        dependencies=auth,
        responses=error_responses(401, 404, *_ALWAYS),
        tags=tags,
    )
