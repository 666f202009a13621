"""Appraisal pages in the browser session: the leaderboard with SVG bars and tables, the
scorecard with its evidence links and review form (labels, CSRF), the evidence pages, and who
sees which page."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Factory
from tests.test_kpis import Builder, measurer_month, refresh
from tests.test_web import csrf_from, login_in_browser

NOV = "from=2026-11-01&to=2026-11-30"


async def test_manager_sees_the_leaderboard_scorecard_and_evidence_and_reviews(
    client: httpx.AsyncClient, session: AsyncSession, factory: Factory
) -> None:
    w = await factory.world()
    await measurer_month(Builder(session, w.org), w)
    await refresh(session)
    await login_in_browser(client, w.manager_a.email)

    board = await client.get(f"/appraisal?{NOV}")
    assert board.status_code == 200, board.text
    html = board.text
    assert "<svg" in html
    assert 'role="img"' in html
    assert "Max Measurer" in html
    assert "Igor Installer" in html
    assert 'href="/appraisal"' in html  # the nav link
    assert '<label for="from">' in html
    # the team's KPI table shows the hand-counted numbers
    assert "50.0 %" in html  # Max's on-time rate
    assert "2/4" in html

    card = await client.get(f"/appraisal/{w.measurer_a.id}?{NOV}")
    assert card.status_code == 200
    assert '<label for="comment">' in card.text
    evidence = f"/appraisal/{w.measurer_a.id}/evidence/late?{NOV}"
    assert evidence.replace("&", "&amp;") in card.text or evidence in card.text
    late = await client.get(evidence)
    assert late.status_code == 200
    assert late.text.count("min late") == 2
    assert re.search(r'href="/visits/[0-9a-f-]{36}"', late.text)

    token = csrf_from(card.text)
    posted = await client.post(
        f"/appraisal/{w.measurer_a.id}/reviews",
        data={
            "_csrf_token": token,
            "dateFrom": "2026-11-01",
            "dateTo": "2026-11-30",
            "comment": "Two late arrivals; talk about the 13th.",
        },
    )
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"].startswith(f"/appraisal/{w.measurer_a.id}?from=2026-11-01")
    again = await client.get(f"/appraisal/{w.measurer_a.id}?{NOV}")
    assert "talk about the 13th" in again.text
    blank = await client.post(
        f"/appraisal/{w.measurer_a.id}/reviews",
        data={
            "_csrf_token": token,
            "dateFrom": "2026-11-01",
            "dateTo": "2026-11-30",
            "comment": " ",
        },
    )
    assert blank.status_code == 422
    assert 'role="alert"' in blank.text
    forged = await client.post(
        f"/appraisal/{w.measurer_a.id}/reviews",
        data={"dateFrom": "2026-11-01", "dateTo": "2026-11-30", "comment": "no token"},
    )
    assert forged.status_code == 403

    other_team = await client.get(f"/appraisal/{w.installer_b.id}?{NOV}")
    assert other_team.status_code == 404


async def test_worker_sees_only_their_own_scorecard(
    client: httpx.AsyncClient, session: AsyncSession, factory: Factory
) -> None:
    w = await factory.world()
    await measurer_month(Builder(session, w.org), w)
    await refresh(session)
    await login_in_browser(client, w.measurer_a.email)
    to_own = await client.get(f"/appraisal?{NOV}")
    assert to_own.status_code == 303
    assert to_own.headers["location"] == "/me/scorecard"
    mine = await client.get(f"/me/scorecard?{NOV}")
    assert mine.status_code == 200
    assert "My scorecard" in mine.text
    assert 'name="comment"' not in mine.text  # no review form on one's own card
    assert (await client.get(f"/appraisal/{w.installer_a.id}?{NOV}")).status_code == 404
    evidence = await client.get(f"/appraisal/{w.measurer_a.id}/evidence/unverified?{NOV}")
    assert evidence.status_code == 200
    assert "unverified" in evidence.text
    assert "suspicious" in evidence.text
