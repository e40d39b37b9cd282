"""The bare-stack anchor of bench/api.py: FastAPI + pydantic + uvicorn + a bearer token.

The same body models as the agent's control API (``agent.api.schemas``), the same bearer
check (FastAPI's HTTPBearer dependency, constant-time compare), an answer of the agent's
shape and size, and no provsync logic: what the web stack alone costs per request.
Served the way the agent serves its API: uvicorn on a socket from ``agent.listen``
(TCP_NODELAY), with the agent's protocol family and event loop unless told otherwise.

    .venv/bin/python bench/api_anchor.py --port P --token T [--http h11|httptools]
        [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.api.schemas import ClearByKeyRequest, NoteRequest, RaiseRequest, RowId
from agent.listen import bind_socket


def agent_stack() -> tuple[str, str]:
    """(http, loop): the uvicorn protocol family and event loop the agent picks by default.

    Both from the agent's own code: ``[api] http`` and ``[agent] event_loop`` at their
    defaults ("auto": httptools and uvloop when installed), resolved the way it does.
    """
    from agent.api.connections import resolve_http
    from agent.config import Settings
    from agent.wiring import loop_factory

    settings = Settings()
    return resolve_http(settings.api.http), loop_factory(settings.agent.event_loop)[0]


_bearer = HTTPBearer(auto_error=False)
# At module level: FastAPI resolves the (postponed) annotations of a dependency in its
# module's globals; a local HTTPBearer would make "credentials" a required query field.
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def create_app(token: str) -> FastAPI:
    app = FastAPI(title="bench anchor")
    expected = token.encode()

    async def authorize(credentials: Credentials) -> None:
        if credentials is None or not secrets.compare_digest(
            credentials.credentials.encode(), expected
        ):
            raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])
    counter = itertools.count(1)

    def answer(
        change: str, alarm_id: int, type_id: str, resource: str, text: str
    ) -> dict[str, Any]:
        # The agent's answer: {"change", "seq", "alarm": alarm_to_json(row)}, same keys.
        now = datetime.now(UTC).isoformat()
        seq = next(counter)
        return {
            "change": change,
            "seq": seq,
            "alarm": {
                "id": alarm_id,
                "type": type_id,
                "resource": resource,
                "qualifier": "",
                "severity": "major",
                "state": "active",
                "text": text,
                "count": 1,
                "raised_at": now,
                "last_raised_at": now,
                "changed_at": now,
                "cleared_at": None,
                "raise_seq": seq,
                "operator_state": "unacknowledged",
                "ack_by": None,
                "ack_at": None,
                "ack_note": None,
                "resolution": "",
            },
        }

    @router.post("/alarms")
    async def raise_alarm(body: RaiseRequest) -> dict[str, Any]:
        return answer("raised", next(counter), body.type, body.resource, body.text)

    @router.post("/alarms/clear")
    async def clear_by_key(body: ClearByKeyRequest) -> dict[str, Any]:
        return answer("cleared", next(counter), body.type, body.resource, "")

    @router.post("/alarms/{alarm_id}/clear")
    async def clear_by_id(alarm_id: RowId, body: NoteRequest | None = None) -> dict[str, Any]:
        return answer("cleared", alarm_id, "element-unreachable", "r", "")

    @router.post("/alarms/{alarm_id}/ack")
    async def ack(alarm_id: RowId, body: NoteRequest | None = None) -> dict[str, Any]:
        return answer("acknowledged", alarm_id, "element-unreachable", "r", "")

    app.include_router(router)

    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--http", choices=("h11", "httptools"), default=None)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=None)
    args = parser.parse_args()
    http, loop = agent_stack()
    config = uvicorn.Config(
        create_app(args.token),
        http=args.http or http,
        loop=args.loop or loop,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    sock = bind_socket("127.0.0.1", args.port, "bench anchor")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
