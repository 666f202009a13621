"""Imports every domain's models so the metadata is complete (Alembic, tests)."""

from backend.accounts.models import AuthSession, Organization, Team, TeamMember, User
from backend.appraisal import report_models  # noqa: F401 - registers the report tables
from backend.appraisal.kpi_models import (
    CustomerRfm,
    FieldDaily,
    FieldDealCredit,
    FieldDealQueue,
    FieldRollupQueue,
    FieldRollupState,
    Scorecard,
    ScorecardReview,
)
from backend.audit.models import AuditEntry
from backend.customers.models import Contact, Customer, Interaction, Site
from backend.db.base import Base
from backend.db.counters import Counter
from backend.documents.models import Attachment, Document, DocumentTemplate
from backend.lib.idempotency import IdempotentRequest
from backend.lib.ratelimit import RateLimitWindow
from backend.notifications.customer.models import (
    CustomerLink,
    MessageTemplate,
    Unsubscribe,
    VisitFeedback,
    VisitMessageState,
)
from backend.notifications.models import (
    Notification,
    NotificationSettings,
    OutboxMessage,
    PushDevice,
    WebPushSubscriptionRow,
)
from backend.routing.models import DispatchPlan, EtaChange, RoutePlan
from backend.sales.models import (
    Automation,
    Deal,
    DealStageChange,
    LeadForm,
    Pipeline,
    Stage,
    Territory,
)
from backend.tasks.models import Task
from backend.tracking.models import (
    CheckIn,
    DailySummary,
    Device,
    LatestPosition,
    Shift,
    ShiftSchedule,
)

__all__ = [
    "Attachment",
    "AuditEntry",
    "AuthSession",
    "Automation",
    "Base",
    "CheckIn",
    "Contact",
    "Counter",
    "Customer",
    "CustomerLink",
    "CustomerRfm",
    "DailySummary",
    "Deal",
    "DealStageChange",
    "Device",
    "DispatchPlan",
    "Document",
    "DocumentTemplate",
    "EtaChange",
    "FieldDaily",
    "FieldDealCredit",
    "FieldDealQueue",
    "FieldRollupQueue",
    "FieldRollupState",
    "IdempotentRequest",
    "Interaction",
    "LatestPosition",
    "LeadForm",
    "MessageTemplate",
    "Notification",
    "NotificationSettings",
    "Organization",
    "OutboxMessage",
    "Pipeline",
    "PushDevice",
    "RateLimitWindow",
    "RoutePlan",
    "Scorecard",
    "ScorecardReview",
    "Shift",
    "ShiftSchedule",
    "Site",
    "Stage",
    "Task",
    "Team",
    "TeamMember",
    "Territory",
    "Unsubscribe",
    "User",
    "VisitFeedback",
    "VisitMessageState",
    "WebPushSubscriptionRow",
]
