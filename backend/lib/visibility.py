"""Who may see a deal, a task or a customer beyond owning it.

Field staff work on deals and customers owned by managers: a measurer must see the deal and
customer of a measurement assigned to them. The rule, in one place:
- a task is visible when its assignee or creator is visible to the actor, or its deal is;
- a deal is visible when its owner is visible, or a task on it is assigned to a visible user;
- a customer is visible when its owner is visible, or it has a visible deal or task.
"Visible user" is ``Actor.visible_owner_ids`` (self, plus led teams' members for managers).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select, true

from backend.customers.models import Customer
from backend.lib.tenancy import Actor
from backend.sales.models import Deal
from backend.tasks.models import Task


def deal_visible(actor: Actor) -> ColumnElement[bool]:
    """Condition on ``Deal`` rows (the organisation filter is added by the caller)."""
    users = actor.visible_owner_ids()
    if users is None:
        return true()
    return or_(
        Deal.owner_id.in_(users),
        Deal.id.in_(
            select(Task.deal_id).where(
                Task.organization_id == actor.organization_id,
                Task.assignee_id.in_(users),
                Task.deal_id.is_not(None),
            )
        ),
    )


def task_visible(actor: Actor) -> ColumnElement[bool]:
    """Condition on ``Task`` rows (the organisation filter is added by the caller)."""
    users = actor.visible_owner_ids()
    if users is None:
        return true()
    return or_(
        Task.assignee_id.in_(users),
        Task.created_by_id.in_(users),
        Task.deal_id.in_(
            select(Deal.id).where(
                Deal.organization_id == actor.organization_id, Deal.owner_id.in_(users)
            )
        ),
    )


def customer_visible(actor: Actor) -> ColumnElement[bool]:
    """Condition on ``Customer`` rows (the organisation filter is added by the caller)."""
    users = actor.visible_owner_ids()
    if users is None:
        return true()
    return or_(
        Customer.owner_id.in_(users),
        Customer.id.in_(
            select(Deal.customer_id).where(
                Deal.organization_id == actor.organization_id, Deal.owner_id.in_(users)
            )
        ),
        Customer.id.in_(
            select(Task.customer_id).where(
                Task.organization_id == actor.organization_id,
                Task.assignee_id.in_(users),
                Task.customer_id.is_not(None),
            )
        ),
    )
