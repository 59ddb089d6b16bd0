"""The demo's live feed: Voluum live events arriving on a local SQS queue, consumed as in production.

`phoneops demo` without `SQS_QUEUE_URL` serves moto's SQS on 127.0.0.1 (the real SQS protocol, as the tests
use it), creates a queue, points the settings at it, and runs two threads next to the server: a feeder that
sends an SNS-wrapped batch of clicks every few seconds (the demo Voluum simulator's campaigns and offers,
numbers the phone library accepts, the OS mix of its traffic), and the same `Consumer` that
`phoneops live-events` runs. The Live events page (Voluum → Live events) therefore moves while the demo runs.
With `SQS_QUEUE_URL` set the demo starts none of this: a real queue has its own `phoneops live-events`.
Nothing starts at import.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog

from phoneops.simulators import voluum_data as vd

log = structlog.get_logger("phoneops.demo_live")

QUEUE_NAME = "phoneops-demo-voluum-live"
EVERY_SECONDS = 4.0  # one batch of clicks this often
# moto accepts any credentials; these name the demo's own queue server and are not a secret
DEMO_AWS = {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo-secret"}


@dataclass
class LiveFeed:
    """What `start_live_feed` started: the queue, and its two threads."""

    queue_url: str
    feeder: threading.Thread
    consumer: Any  # phoneops.voluum.live.Consumer
    sent: int = 0  # events sent so far


def demo_events(rng: random.Random, count: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """`count` live clicks as Voluum sends them: the demo simulator's campaigns and offers, its countries'
    numbers (valid for the phone library) and its OS mix."""
    now = now or datetime.now(UTC)
    data = vd.seed_dataset(0, date.today(), 0, 0, countries_table=vd.DEMO_COUNTRIES)  # the simulator's seed
    countries = {c[0]: c for c in vd.DEMO_COUNTRIES}
    versions, weights = zip(*vd.OS_VERSIONS, strict=True)
    events = []
    for n in range(count):
        campaign = rng.choice(data.campaigns)
        code = campaign["country"]["code"] or rng.choice(vd.DEMO_COUNTRIES)[0]
        _, country, prefix, width = countries[code]
        os_version = rng.choices(versions, weights)[0]  # "IOS 18.6", "Android", "Mac OS X 10.15"
        family, _, version = os_version.rpartition(" ") if os_version[-1].isdigit() else (os_version, "", "")
        browser, _, browser_version = rng.choice(vd.BROWSERS).rpartition(" ")
        moment = now - timedelta(milliseconds=(count - n) * 150)
        events.append({
            "clickId": rng.randbytes(12).hex(), "campaignId": campaign["id"], "offerId": rng.choice(data.offers)["id"],
            "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "trafficSourceId": campaign["trafficSource"]["id"], "device": "MOBILE",
            "os": family, "osVersion": version, "browser": browser, "browserVersion": browser_version,
            "countryCode": code, "region": country, "ip": f"203.0.113.{rng.randrange(1, 255)}",
            "customVariables": [prefix + f"{rng.randrange(10**width):0{width}d}", "", "", "", "", "", "", "", "", ""],
            "userAgent": "Mozilla/5.0 (demo)", "language": "en",
        })
    return events


def start_live_feed(env: MutableMapping[str, str], stack: contextlib.ExitStack, *,
                    every: float = EVERY_SECONDS) -> LiveFeed | None:
    """Serve moto's SQS, create the demo queue, set the settings (AWS_ENDPOINT_URL, SQS_QUEUE_URL ...) in `env`
    and start the feeder and the consumer; all stop when `stack` closes. None when SQS_QUEUE_URL is set
    already (a real queue)."""
    if env.get("SQS_QUEUE_URL"):
        return None
    from moto.server import ThreadedMotoServer

    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.live import Consumer, ConsumerConfig, send_event_batches, sqs_client

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    stack.callback(server.stop)
    host, port = server.get_host_and_port()
    env["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    env.update(DEMO_AWS)
    reset_settings_cache()
    sqs = sqs_client()
    url = sqs.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
    env["SQS_QUEUE_URL"] = url
    reset_settings_cache()

    stop = threading.Event()
    consumer = Consumer(sqs, url, config=ConsumerConfig(wait_seconds=1, idle_initial=0.5, idle_max=2.0))
    feed = LiveFeed(url, threading.Thread(), consumer)

    def send() -> None:
        rng = random.Random()
        while not stop.is_set():
            try:
                events = demo_events(rng, rng.randint(1, 4))
                send_event_batches(sqs, url, [events])
                feed.sent += len(events)
            except Exception as exc:  # the demo server goes on; the next round tries again
                log.warning("demo.live_feed.send_failed", error=f"{type(exc).__name__}: {exc}")
            stop.wait(every)

    feed.feeder = _thread("demo-live-feeder", send)
    consumer_thread = _thread("demo-live-consumer", consumer.run)

    def halt() -> None:
        stop.set()
        consumer.stop()
        feed.feeder.join(timeout=5)
        consumer_thread.join(timeout=5)

    stack.callback(halt)
    return feed


def _thread(name: str, target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
