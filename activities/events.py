"""The events activity: publish an event for other systems on the events queue (never a secret in it)."""

from __future__ import annotations

import logging

import azure.durable_functions as df

from activities._common import settings
from provisioning import telemetry
from provisioning.storage import EventPublisher

bp = df.Blueprint()
log = logging.getLogger(__name__)


def publish_event(payload: dict) -> dict:
    """Send the event as a JSON message. Delivery is at least once: consumers dedupe on `eventId`."""
    EventPublisher(settings()).publish(payload)
    telemetry.log_pool_outcome(log, payload)
    return {"published": True, "eventId": payload.get("eventId")}


bp.activity_trigger(input_name="payload")(publish_event)
