"""The window company's sales process, as data: stages, their rules and automations, the
website form and the invoice template. The demo seeds it; tests load the very same rules.

Nothing here is special-cased in code: another company defines its own stages and automations
through the API (``/api/v1/pipelines``, ``/api/v1/stages/{id}/automations``).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization
from backend.sales.automations import parse_config
from backend.sales.models import (
    AssignmentRule,
    Automation,
    AutomationAction,
    LeadForm,
    Pipeline,
    Requirement,
    Stage,
    StageKind,
)

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "pipeline": "Продажи окон",
        "first_call": "Первый звонок",
        "measurements": "Замер",
        "agreement": "Согласование",
        "payment": "Оплата",
        "installation": "Монтаж",
        "won": "Успешно",
        "lost": "Отказ",
        "call_back": "Перезвонить клиенту в течение 15 минут: {{ customer.name }}",
        "call_back_body": "Заявка с сайта. Телефон: {{ customer.phone }}",
        "measure": "Выезд на замер по сделке «{{ deal.title }}» {{ deal.scheduledStart }}",
        "measure_body": "Адрес: {{ site.address }}. {{ site.accessNotes }}",
        "calculate": "Рассчитать стоимость и перезвонить клиенту в течение 2 часов: "
        "{{ customer.name }}",
        "install": "Монтаж по сделке «{{ deal.title }}» — выполнить до {{ due }}",
        "install_body": "Адрес: {{ site.address }}. Клиент: {{ customer.name }}, "
        "{{ customer.phone }}",
        "invoice_ready": "Счёт готов: {{ deal.title }}",
        "won_note": "Сделка закрыта: {{ deal.title }} ({{ deal.amount }} {{ deal.currency }})",
        "form": "Заявка на окна",
        "deal_title": "Заявка с сайта",
        "thank_you": "Спасибо! Менеджер перезвонит вам в течение 15 минут.",
    },
    "en": {
        "pipeline": "Window sales",
        "first_call": "First call",
        "measurements": "Measurements",
        "agreement": "Agreement",
        "payment": "Payment",
        "installation": "Installation",
        "won": "Won",
        "lost": "Lost",
        "call_back": "Call the client back within 15 minutes: {{ customer.name }}",
        "call_back_body": "Website request. Phone: {{ customer.phone }}",
        "measure": "Go to measure for deal {{ deal.title }} at {{ deal.scheduledStart }}",
        "measure_body": "Address: {{ site.address }}. {{ site.accessNotes }}",
        "calculate": "Calculate the cost and call the client within 2 hours: {{ customer.name }}",
        "install": "Installation for deal {{ deal.title }}: done before {{ due }}",
        "install_body": "Address: {{ site.address }}. Customer: {{ customer.name }}, "
        "{{ customer.phone }}",
        "invoice_ready": "Invoice ready: {{ deal.title }}",
        "won_note": "Deal won: {{ deal.title }} ({{ deal.amount }} {{ deal.currency }})",
        "form": "Window request",
        "deal_title": "Website request",
        "thank_you": "Thank you! A manager will call you back within 15 minutes.",
    },
}

# Mon–Sat 09:00–20:00: when a window company answers the phone.
WINDOW_COMPANY_HOURS: dict[str, Any] = {
    "week": {
        **{day: [["09:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")},
        "sun": [],
    },
    "holidays": [],
}


@dataclass
class WindowPipeline:
    """What ``seed_window_pipeline`` made (ids the demo and tests need)."""

    pipeline: Pipeline
    stages: dict[str, Stage]
    form: LeadForm


def _automations(
    t: dict[str, str],
) -> dict[str, list[tuple[str, AutomationAction, dict[str, Any]]]]:
    return {
        "first_call": [
            (
                "Call back within 15 minutes",
                AutomationAction.CREATE_TASK,
                {
                    "kind": "call",
                    "title": t["call_back"],
                    "description": t["call_back_body"],
                    "assignee": {"rule": "owner"},
                    "due": {"from": "entered", "offsetMinutes": 15, "businessHours": True},
                    "escalateAfterMinutes": 15,
                    "priority": 80,
                },
            )
        ],
        "measurements": [
            (
                "Measurer visit",
                AutomationAction.CREATE_TASK,
                {
                    "kind": "measurement",
                    "title": t["measure"],
                    "description": t["measure_body"],
                    "assignee": {"rule": "skill", "skill": "measurer", "pick": "route"},
                    "due": {"from": "scheduledEnd", "offsetMinutes": 0},
                    "window": "scheduled",
                    "durationMinutes": 60,
                    "escalateAfterMinutes": 60,
                },
            )
        ],
        "agreement": [
            (
                "Calculate and call within 2 hours",
                AutomationAction.CREATE_TASK,
                {
                    "kind": "call",
                    "title": t["calculate"],
                    "assignee": {"rule": "owner"},
                    "due": {"from": "entered", "offsetMinutes": 120, "businessHours": True},
                    "escalateAfterMinutes": 60,
                    "priority": 60,
                },
            )
        ],
        "payment": [
            (
                "Invoice",
                AutomationAction.GENERATE_DOCUMENT,
                {"template": "Invoice", "notifyOwner": True},
            )
        ],
        "installation": [
            (
                "Installer with a deadline",
                AutomationAction.CREATE_TASK,
                {
                    "kind": "installation",
                    "title": t["install"],
                    "description": t["install_body"],
                    "assignee": {"rule": "skill", "skill": "installer", "pick": "route"},
                    "due": {"from": "entered", "offsetMinutes": 14 * 24 * 60},
                    "escalateAfterMinutes": 24 * 60,
                    "priority": 50,
                },
            )
        ],
        "won": [
            (
                "Tell the owner",
                AutomationAction.NOTIFY,
                {"recipients": ["admins"], "title": t["won_note"]},
            )
        ],
    }


async def seed_window_pipeline(
    session: AsyncSession, organization: Organization, *, form_key: str | None = None
) -> WindowPipeline:
    """Create the window company's pipeline, rules, automations and website form for
    ``organization`` (texts in its language), unless it already has that pipeline."""
    t = TEXTS["ru" if organization.locale.lower().startswith("ru") else "en"]
    existing = await session.scalar(
        select(Pipeline).where(
            Pipeline.organization_id == organization.id, Pipeline.name == t["pipeline"]
        )
    )
    if existing is not None:
        rows = await session.scalars(select(Stage).where(Stage.pipeline_id == existing.id))
        by_name = {s.name: s for s in rows.all()}
        form = await session.scalar(
            select(LeadForm).where(LeadForm.pipeline_id == existing.id).limit(1)
        )
        assert form is not None
        keys = ("first_call", "measurements", "agreement", "payment", "installation", "won", "lost")
        return WindowPipeline(existing, {k: by_name[t[k]] for k in keys}, form)
    if not organization.business_hours:
        organization.business_hours = WINDOW_COMPANY_HOURS
    org_id = organization.id
    has_default = await session.scalar(
        select(Pipeline.id).where(Pipeline.organization_id == org_id, Pipeline.is_default)
    )
    pipeline = Pipeline(
        id=uuid.uuid4(), organization_id=org_id, name=t["pipeline"], is_default=not has_default
    )
    session.add(pipeline)

    def stage(key: str, position: int, **kw: Any) -> Stage:
        row = Stage(
            id=uuid.uuid4(),
            organization_id=org_id,
            pipeline_id=pipeline.id,
            name=t[key],
            position=position,
            **kw,
        )
        session.add(row)
        return row

    first = stage("first_call", 10, requirements=[])
    measure = stage(
        "measurements",
        20,
        requirements=[Requirement.SCHEDULED_TIME.value, Requirement.SITE.value],
        allowed_from=[first.id],
        entry_roles=["admin", "manager"],
    )
    agree = stage(
        "agreement",
        30,
        requirements=[Requirement.ATTACHMENT.value],
        allowed_from=[measure.id],
    )
    pay = stage(
        "payment",
        40,
        requirements=[Requirement.AMOUNT.value, Requirement.LINE_ITEMS.value],
        allowed_from=[agree.id],
        entry_roles=["admin", "manager"],
    )
    install = stage(
        "installation",
        50,
        requirements=[Requirement.DOCUMENT.value],
        allowed_from=[pay.id],
        entry_roles=["admin", "manager"],
    )
    won = stage(
        "won", 60, kind=StageKind.WON, allowed_from=[install.id], entry_roles=["admin", "manager"]
    )
    lost = stage(
        "lost",
        70,
        kind=StageKind.LOST,
        requirements=[Requirement.LOST_REASON.value],
        entry_roles=["admin", "manager"],
    )
    stages = {
        "first_call": first,
        "measurements": measure,
        "agreement": agree,
        "payment": pay,
        "installation": install,
        "won": won,
        "lost": lost,
    }
    await session.flush()
    for key, rules in _automations(t).items():
        for position, (name, action, config) in enumerate(rules):
            checked = parse_config(action, config)
            session.add(
                Automation(
                    id=uuid.uuid4(),
                    organization_id=org_id,
                    stage_id=stages[key].id,
                    name=name,
                    position=position,
                    action=action,
                    config=msgspec.to_builtins(checked),
                )
            )
    form = LeadForm(
        id=uuid.uuid4(),
        organization_id=org_id,
        key=form_key or secrets.token_urlsafe(24),
        name=t["form"],
        pipeline_id=pipeline.id,
        source="website",
        assignment=AssignmentRule.ROUND_ROBIN,
        deal_title=t["deal_title"],
        thank_you=t["thank_you"],
    )
    session.add(form)
    await session.flush()
    return WindowPipeline(pipeline, stages, form)
