"""Dependency providers of tracking."""

from __future__ import annotations

from typing import Any

from litestar import Response
from litestar.datastructures import State
from litestar.di import Provide

from backend.tracking.group_commit import Outcome, PingWriter


def provide_ping_writer(state: State) -> PingWriter:
    """The process's group writer of ping batches (``create_app`` makes it)."""
    writer: PingWriter = state.ping_writer
    return writer


PROVIDE_PING_WRITER = Provide(provide_ping_writer, sync_to_thread=False)


def pings_response(outcome: Outcome) -> Response[Any]:
    """The answer to a batch of pings (marked when it replays an earlier request's)."""
    headers = {"Idempotent-Replay": "true"} if outcome.replay else None
    return Response(outcome.body, status_code=outcome.status, headers=headers)
