"""Pushes: the outbox, the one rate-limited sender, and the leader election that makes sure
only one process runs the sender and the scheduler.

Planning code (reminders, broadcasts) calls :func:`enqueue` / :func:`enqueue_many` /
:func:`enqueue_broadcast` inside its own transaction; the dispatch path calls :func:`unblock`
when a message arrives. Nothing here imports a messenger library except
:mod:`scheduler.transports`.
"""

from scheduler.limits import DEFAULT_LIMITS, ChannelLimits, RetryPolicy, TokenBucket
from scheduler.outbox import (
    BroadcastStatus,
    Push,
    Recipient,
    broadcast_status,
    cancel_broadcast,
    enqueue,
    enqueue_broadcast,
    enqueue_many,
    finish_broadcasts,
    unblock,
)
from scheduler.sender import Sender, SenderStats

__all__ = [
    "DEFAULT_LIMITS",
    "BroadcastStatus",
    "ChannelLimits",
    "Push",
    "Recipient",
    "RetryPolicy",
    "Sender",
    "SenderStats",
    "TokenBucket",
    "broadcast_status",
    "cancel_broadcast",
    "enqueue",
    "enqueue_broadcast",
    "enqueue_many",
    "finish_broadcasts",
    "unblock",
]
