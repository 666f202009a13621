"""Run the demo as a whole: the API and web client, the background worker, and local stand-ins
for the outside services messages go to, so every push, email and SMS of the window company's
story is really sent and can be looked at.

- FCM: push.fake_fcm.FakeFcm (FCM HTTP v1 + OAuth token endpoint); the worker's firebase-admin
  sends to it with a throwaway service-account key written to var/demo/fcm-key.json.
- Email: an SMTP server (aiosmtpd) that keeps each message as var/demo/mail/<n>.eml.
- SMS: an HTTP endpoint that keeps each message as a line of var/demo/sms.jsonl.
Each message also prints one line here. Ctrl+C stops everything.

Used by `make demo` after migrate and seed; needs the same environment as `fieldcrm serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from push.fake_fcm import FakeFcm
from push.fakehttp import FakeHTTPServer, Request, Response

DEMO_DIR = Path("var/demo")


def say(line: str) -> None:
    """One line of the demo's own log."""
    print(f"demo: {line}", file=sys.stderr, flush=True)


class MailKeeper:
    """aiosmtpd handler: every accepted message becomes var/demo/mail/<n>.eml."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = len(list(folder.glob("*.eml")))

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Keep the message and print who it is for and its subject."""
        content = envelope.original_content or b""
        self.count += 1
        (self.folder / f"{self.count:05d}.eml").write_bytes(content)
        subject = message_from_bytes(content, policy=default_policy).get("subject", "")
        say(f"email to {', '.join(envelope.rcpt_tos)}: {subject}")
        return "250 Message accepted for delivery"


def sms_keeper(log: Path) -> Any:
    """A handler for the fake SMS provider: keeps the posted body, answers with an id."""
    counter = {"n": 0}

    async def handle(request: Request) -> Response:
        counter["n"] += 1
        try:
            body = request.json()
        except ValueError:
            body = request.form()
        with log.open("a", encoding="utf-8") as out:
            out.write(json.dumps(body, ensure_ascii=False) + "\n")
        say(f"sms: {json.dumps(body, ensure_ascii=False)[:160]}")
        return Response.json(200, {"id": f"sms-{counter['n']}"})

    return handle


async def run(args: argparse.Namespace) -> int:
    """Start the stand-ins, then the worker and the server; stop all when one ends."""
    mail_dir = DEMO_DIR / "mail"
    mail_dir.mkdir(parents=True, exist_ok=True)
    fcm = FakeFcm(host="127.0.0.1", port=args.fcm_port)
    await fcm.start()
    key = DEMO_DIR / "fcm-key.json"
    key.write_text(json.dumps(fcm.service_account("fieldcrm-demo"), indent=2))
    key.chmod(0o600)
    smtp = Controller(MailKeeper(mail_dir), hostname="127.0.0.1", port=args.smtp_port)
    smtp.start()
    sms = FakeHTTPServer(sms_keeper(DEMO_DIR / "sms.jsonl"), port=args.sms_port)
    await sms.start()
    say(f"fake FCM {fcm.url}, SMTP 127.0.0.1:{args.smtp_port} -> {mail_dir}/, SMS {sms.url}")
    env = {
        **os.environ,
        "FIELDCRM_FCM_SERVICE_ACCOUNT": str(key.resolve()),
        "FIELDCRM_FCM_PROJECT_ID": "fieldcrm-demo",
        "FIELDCRM_FCM_URL": fcm.url,
        "FIELDCRM_SMTP_HOST": "127.0.0.1",
        "FIELDCRM_SMTP_PORT": str(args.smtp_port),
        "FIELDCRM_SMTP_STARTTLS": "false",
        "FIELDCRM_SMTP_FROM": "Kirill's Windows <noreply@windows.example>",
        "FIELDCRM_SMS_URL": f"{sms.url}/messages",
        "FIELDCRM_PUBLIC_BASE_URL": f"http://{args.host}:{args.port}",
    }
    serve = ["fieldcrm", "serve", "--host", args.host, "--port", str(args.port)]
    if args.show_demo_logins:
        serve.append("--show-demo-logins")
    children = [
        await asyncio.create_subprocess_exec("fieldcrm", "worker", env=env),
        await asyncio.create_subprocess_exec(*serve, env=env),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    waits = [asyncio.create_task(child.wait()) for child in children]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for child in children:
        if child.returncode is None:
            child.terminate()
        else:
            code = code or child.returncode
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*waits), timeout=15)
    for child in children:
        if child.returncode is None:
            child.kill()
    stopper.cancel()
    smtp.stop()
    await sms.stop()
    await fcm.stop()
    say(
        f"stopped; {len(fcm.delivered)} pushes, "
        f"{len(list(mail_dir.glob('*.eml')))} emails kept in {mail_dir}/"
    )
    return code


def main() -> None:
    """Parse the options and run until Ctrl+C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fcm-port", type=int, default=9099)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--sms-port", type=int, default=9098)
    parser.add_argument("--show-demo-logins", action="store_true")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
