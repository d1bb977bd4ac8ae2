"""Small messages that worker threads post to screens (the only way data reaches the UI thread)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from sdtui.data import CampaignSummary, DashboardData


@dataclass
class _DataMessage(Message):
    """Textual's Message initializes itself in __post_init__, so dataclass messages just work."""


@dataclass
class CampaignsLoaded(_DataMessage):
    rows: list[CampaignSummary]


@dataclass
class DashboardUpdated(_DataMessage):
    data: DashboardData


@dataclass
class SamplesLoaded(_DataMessage):
    rows: list[dict]
    token: int  # which request this answers (older answers are dropped)
    seconds: float
    first: dict | None = None  # the full row of the sample to show (saves a second round trip)


@dataclass
class SampleLoaded(_DataMessage):
    sample: dict
    prompt: str
    slot: str  # "main" | "compare"


@dataclass
class StoreFailed(_DataMessage):
    """A read failed (locked database, schema too new, ...): shown as a notification, polling goes on."""

    error: str


@dataclass
class CommandSent(_DataMessage):
    cid: int
    verb: str
    command_id: int | None
    error: str | None = None


@dataclass
class CliFinished(_DataMessage):
    """A `sdtui start|resume` subprocess ended."""

    action: str
    returncode: int
    stdout: str
    stderr: str
