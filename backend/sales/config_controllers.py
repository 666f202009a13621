"""JSON API for configuring sales: pipelines, stages, automations, lead forms, territories."""

from __future__ import annotations

CONTROLLERS: list[type] = []
