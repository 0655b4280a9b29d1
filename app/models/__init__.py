"""Tables only; one small module per table group."""

from app.models.accounts import ROLES, UsedToken, User
from app.models.answers import Answer
from app.models.audit import AuditEvent
from app.models.base import BaseModel, UTCDateTimeField, database
from app.models.mail import Correspondence, Delivery, FollowUpLink, InboundMessage, ReceivedFile
from app.models.registry import PublicKey, Registrant
from app.models.vulns import (
    PUBLIC_STATES,
    Advisory,
    AdvisoryBundle,
    CveId,
    Finding,
    Patch,
    Publication,
    Revision,
    Vulnerability,
)

ALL_MODELS = (
    User,
    UsedToken,
    PublicKey,
    Registrant,
    CveId,
    Vulnerability,
    Finding,
    AdvisoryBundle,
    Advisory,
    Patch,
    Publication,
    Revision,
    Answer,
    InboundMessage,
    FollowUpLink,
    Delivery,
    Correspondence,
    ReceivedFile,
    AuditEvent,
)

__all__ = [
    "ALL_MODELS",
    "PUBLIC_STATES",
    "ROLES",
    "Advisory",
    "Answer",
    "AdvisoryBundle",
    "AuditEvent",
    "BaseModel",
    "Correspondence",
    "CveId",
    "Delivery",
    "Finding",
    "FollowUpLink",
    "InboundMessage",
    "Patch",
    "Publication",
    "PublicKey",
    "ReceivedFile",
    "Revision",
    "Registrant",
    "UTCDateTimeField",
    "UsedToken",
    "User",
    "Vulnerability",
    "database",
]
