"""Scorecards through the API: validation of the admin's scorecard, scores and trend from a
hand-counted month, the leaderboard, role visibility, evidence lists that match the numbers,
and review comments."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.appraisal.scorecards import CATALOG, attainment
from backend.tasks.models import TaskKind, TaskStatus
from tests.conftest import Factory, World
from tests.test_kpis import Builder, measurer_month, refresh

NOV = "from=2026-11-01&to=2026-11-30"
BASE = "/api/v1/appraisal"

FIELD_CARD = {
    "items": [
        {"kpi": "visits_done", "weight": 1, "target": 10},
        {"kpi": "on_time_rate", "weight": 2, "target": 100},
        {"kpi": "verified_share", "weight": 1, "target": 80},
        {"kpi": "tasks_overdue", "weight": 1, "target": 1},
        {"kpi": "rating_avg", "weight": 5, "target": 5},
    ]
}


async def put_card(
    client: httpx.AsyncClient, factory: Factory, w: World, body: Any
) -> httpx.Response:
    return await client.put(f"{BASE}/scorecards/field", json=body, headers=factory.auth(w.admin))


async def month(session: AsyncSession, factory: Factory) -> World:
    w = await factory.world()
    await measurer_month(Builder(session, w.org), w)
    await refresh(session)
    return w


async def test_scorecard_validation(client: httpx.AsyncClient, factory: Factory) -> None:
    w = await factory.world()
    got = await client.get(f"{BASE}/scorecards/field", headers=factory.auth(w.admin))
    assert got.status_code == 200
    assert got.json()["isDefault"] is True

    bad = {
        "items": [
            {"kpi": "charm", "weight": 1, "target": 1},
            {"kpi": "on_time_rate", "weight": -1, "target": 90},
            {"kpi": "sla_met_rate", "weight": 1, "target": 150},
            {"kpi": "rating_avg", "weight": 1, "target": 0.5},
            {"kpi": "sla_met_rate", "weight": 1, "target": 90},
        ]
    }
    refused = await put_card(client, factory, w, bad)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"]: e["reason"] for e in refused.json()["errors"]}
    assert set(fields) == {
        "items[0].kpi",
        "items[1].weight",
        "items[2].target",
        "items[3].target",
        "items[4].kpi",
    }
    assert "between 1 and 100" in fields["items[2].target"]
    assert fields["items[4].kpi"] == "listed twice"
    zero = {"items": [{"kpi": "visits_done", "weight": 0, "target": 5}]}
    refused = await put_card(client, factory, w, zero)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "items"
    assert (await put_card(client, factory, w, {"items": []})).status_code == 400
    unknown_field = {"items": [{"kpi": "visits_done", "weight": 1, "target": 5, "x": 1}]}
    assert (await put_card(client, factory, w, unknown_field)).status_code == 400
    wrong_role = await client.put(
        f"{BASE}/scorecards/boss", json=FIELD_CARD, headers=factory.auth(w.admin)
    )
    assert wrong_role.status_code == 422
    by_manager = await client.put(
        f"{BASE}/scorecards/field", json=FIELD_CARD, headers=factory.auth(w.manager_a)
    )
    assert by_manager.status_code == 403
    by_worker = await client.get(f"{BASE}/scorecards/field", headers=factory.auth(w.measurer_a))
    assert by_worker.status_code == 403

    saved = await put_card(client, factory, w, FIELD_CARD)
    assert saved.status_code == 200, saved.text
    got = await client.get(f"{BASE}/scorecards/field", headers=factory.auth(w.manager_a))
    assert got.json()["isDefault"] is False
    assert got.json()["items"] == FIELD_CARD["items"]


def test_attainment_rules() -> None:
    visits, overdue = CATALOG["visits_done"], CATALOG["tasks_overdue"]
    assert attainment(visits, 5, 10) == 0.5
    assert attainment(visits, 15, 10) == 1.0
    assert attainment(overdue, 1, 2) == 1.0
    assert attainment(overdue, 4, 2) == 0.5
    assert attainment(overdue, 3, 0) == 0.25


async def test_score_trend_and_evidence_of_a_hand_counted_month(
    client: httpx.AsyncClient, session: AsyncSession, factory: Factory
) -> None:
    w = await month(session, factory)
    b = Builder(session, w.org)
    # October: two visits done, nothing else
    for day in (5, 6):
        await b.task(w.measurer_a, completed=b.at(date(2026, 10, day), 12))
    await refresh(session)
    assert (await put_card(client, factory, w, FIELD_CARD)).status_code == 200

    got = await client.get(
        f"{BASE}/people/{w.measurer_a.id}/scorecard?{NOV}", headers=factory.auth(w.manager_a)
    )
    assert got.status_code == 200, got.text
    card = got.json()
    lines = {line["kpi"]: line for line in card["lines"]}
    # 30 days: visits 6 of 10 -> 0.6; on time 50 of 100 -> 0.5; verified 66.7 of 80 ->
    # 0.83375; overdue 2 over a target of 1 -> 0.5; no rating -> left out (weight 5 unused)
    assert lines["visits_done"]["attainment"] == 0.6
    assert lines["on_time_rate"]["attainment"] == 0.5
    assert lines["verified_share"]["attainment"] == 0.834
    assert lines["tasks_overdue"]["attainment"] == 0.5
    assert lines["rating_avg"]["value"] is None
    assert lines["rating_avg"]["attainment"] is None
    expected = round(100 * (0.6 + 2 * 0.5 + 66.7 / 80 + 0.5) / 5, 1)
    assert card["score"] == expected == 58.7
    # October 2-31 (the 30 days before): 3 visits (5th, 6th, 31st) of 10 -> 0.3; overdue 0
    # -> 1; nothing else to judge
    assert card["previousScore"] == 65.0
    assert card["trend"] == -6.3

    # every number's evidence lists exactly as many items as the number says
    kpis = card["kpis"]
    expected_lengths = {
        "visits": kpis["visitsDone"],
        "late": kpis["arrivalsJudged"] - kpis["arrivalsOnTime"],
        "unverified": kpis["checkIns"] - kpis["checkInsVerified"],
        "overdue": kpis["tasksOverdue"],
        "sla-missed": kpis["slaJudged"] - kpis["slaMet"],
        "deals": 0,
    }
    assert expected_lengths == {
        "visits": 6,
        "late": 2,
        "unverified": 2,
        "overdue": 2,
        "sla-missed": 1,
        "deals": 0,
    }
    for kind, count in expected_lengths.items():
        items = await all_items(
            client, factory, w, f"{BASE}/people/{w.measurer_a.id}/evidence/{kind}?{NOV}"
        )
        assert len(items) == count, kind
    late = await all_items(
        client, factory, w, f"{BASE}/people/{w.measurer_a.id}/evidence/late?{NOV}"
    )
    assert [i["title"] for i in late] == [
        "V4 first ETA 09:00, arrived 09:30",
        "V2 late, SLA missed",
    ]
    assert late[0]["detail"] == (
        "arrived 2026-11-13 09:30, promised by 2026-11-13 09:15 (15 min late)"
    )
    assert late[0]["link"].startswith("/api/v1/tasks/")
    task = await client.get(late[0]["link"], headers=factory.auth(w.manager_a))
    assert task.status_code == 200
    assert task.json()["title"] == late[0]["title"]
    unknown = await client.get(
        f"{BASE}/people/{w.measurer_a.id}/evidence/gossip?{NOV}", headers=factory.auth(w.admin)
    )
    assert unknown.status_code == 404


async def all_items(client: httpx.AsyncClient, factory: Factory, w: World, url: str) -> list[Any]:
    """Every page of an evidence list, two at a time."""
    items: list[Any] = []
    cursor = None
    while True:
        page_url = f"{url}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        got = await client.get(page_url, headers=factory.auth(w.admin))
        assert got.status_code == 200, got.text
        body = got.json()
        items.extend(body["items"])
        cursor = body.get("nextCursor")
        if not cursor:
            return items


async def test_leaderboard_and_visibility(
    client: httpx.AsyncClient, session: AsyncSession, factory: Factory
) -> None:
    w = await month(session, factory)
    b = Builder(session, w.org)
    # Igor: one visit, on time, verified
    d = date(2026, 11, 18)
    v = await b.task(w.installer_a, window=(b.at(d, 9), b.at(d, 11)), completed=b.at(d, 10))
    await b.check_in(v, w.installer_a, b.at(d, 9, 30))
    await refresh(session)
    assert (await put_card(client, factory, w, FIELD_CARD)).status_code == 200

    url = f"{BASE}/teams/{w.team_a.id}/leaderboard?{NOV}"
    board = await client.get(url, headers=factory.auth(w.manager_a))
    assert board.status_code == 200, board.text
    rows = board.json()["rows"]
    # Igor: visits 1/10 -> 0.1, on time 1.0 (x2), verified 1.0, overdue 0 -> 1: 4.1 / 5
    assert [(r["rank"], r["fullName"], r["score"]) for r in rows] == [
        (1, "Igor Installer", 82.0),
        (2, "Max Measurer", 58.7),
    ]
    assert (await client.get(url, headers=factory.auth(w.admin))).status_code == 200
    assert (await client.get(url, headers=factory.auth(w.manager_b))).status_code == 404
    assert (await client.get(url, headers=factory.auth(w.measurer_a))).status_code == 403
    team = await client.get(f"{BASE}/teams/{w.team_a.id}?{NOV}", headers=factory.auth(w.admin))
    assert team.json()["totals"]["visitsDone"] == 7

    max_card = f"{BASE}/people/{w.measurer_a.id}/scorecard?{NOV}"
    assert (await client.get(max_card, headers=factory.auth(w.measurer_a))).status_code == 200
    assert (await client.get(max_card, headers=factory.auth(w.installer_a))).status_code == 404
    assert (await client.get(max_card, headers=factory.auth(w.manager_b))).status_code == 404
    assert (await client.get(max_card, headers=factory.auth(w.admin))).status_code == 200
    evidence = f"{BASE}/people/{w.measurer_a.id}/evidence/late?{NOV}"
    assert (await client.get(evidence, headers=factory.auth(w.installer_a))).status_code == 404
    mine = await client.get(f"{BASE}/me/scorecard?{NOV}", headers=factory.auth(w.measurer_a))
    assert mine.status_code == 200
    assert mine.json()["userId"] == str(w.measurer_a.id)
    other = await factory.world("Other Windows")
    foreign = f"{BASE}/people/{other.measurer_a.id}/scorecard?{NOV}"
    assert (await client.get(foreign, headers=factory.auth(w.admin))).status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-11-30&to=2026-11-01", "to"),
        ("from=2026-11-01", "to"),
        ("from=2024-01-01&to=2026-11-01", "to"),
    ],
)
async def test_periods_are_checked(
    client: httpx.AsyncClient, factory: Factory, query: str, field: str
) -> None:
    w = await factory.world()
    got = await client.get(f"{BASE}/me/scorecard?{query}", headers=factory.auth(w.measurer_a))
    assert got.status_code == 422
    assert got.json()["errors"][0]["field"] == field
    malformed = await client.get(
        f"{BASE}/me/scorecard?from=yesterday&to=2026-11-01", headers=factory.auth(w.measurer_a)
    )
    assert malformed.status_code == 400


async def test_default_period_is_the_quarter_to_date(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    w = await factory.world()
    got = await client.get(f"{BASE}/me/scorecard", headers=factory.auth(w.measurer_a))
    assert got.status_code == 200
    assert (got.json()["dateFrom"], got.json()["dateTo"]) == ("2026-10-01", "2026-11-24")


async def test_reviews(client: httpx.AsyncClient, session: AsyncSession, factory: Factory) -> None:
    w = await factory.world()
    url = f"{BASE}/people/{w.measurer_a.id}/reviews"
    body = {"dateFrom": "2026-11-01", "dateTo": "2026-11-30", "comment": "Punctual, mostly."}
    made = await client.post(url, json=body, headers=factory.auth(w.manager_a))
    assert made.status_code == 201, made.text
    assert made.json()["authorName"] == "Mark Manager"
    assert (await client.post(url, json=body, headers=factory.auth(w.manager_b))).status_code == 404
    assert (
        await client.post(url, json=body, headers=factory.auth(w.measurer_a))
    ).status_code == 403
    own = f"{BASE}/people/{w.manager_a.id}/reviews"
    assert (await client.post(own, json=body, headers=factory.auth(w.manager_a))).status_code == 403
    blank = {**body, "comment": "   "}
    assert (await client.post(url, json=blank, headers=factory.auth(w.admin))).status_code == 422
    backwards = {**body, "dateFrom": "2026-12-01"}
    assert (
        await client.post(url, json=backwards, headers=factory.auth(w.admin))
    ).status_code == 422
    listed = await client.get(f"{url}?{NOV}", headers=factory.auth(w.measurer_a))
    assert [r["comment"] for r in listed.json()] == ["Punctual, mostly."]
    october = await client.get(
        f"{url}?from=2026-10-01&to=2026-10-31", headers=factory.auth(w.admin)
    )
    assert october.json() == []
    audited = await session.scalar(
        text("SELECT count(*) FROM audit_log WHERE entity = 'scorecard_review'")
    )
    assert audited == 1


async def test_overdue_evidence_says_still_open(
    client: httpx.AsyncClient, session: AsyncSession, factory: Factory
) -> None:
    w = await factory.world()
    b = Builder(session, w.org)
    await b.task(
        w.measurer_a,
        TaskKind.CALL,
        status=TaskStatus.OPEN,
        due=b.at(date(2026, 11, 20), 10),
        title="Call back",
    )
    await refresh(session)
    items = await all_items(
        client, factory, w, f"{BASE}/people/{w.measurer_a.id}/evidence/overdue?{NOV}"
    )
    assert [(i["title"], i["detail"]) for i in items] == [
        ("Call back", "due 2026-11-20 10:00, still open")
    ]
