"""The ``fieldcrm`` command: migrate, seed, import, serve.

fieldcrm migrate                      bring the schema up to date
fieldcrm seed-demo                    create (or refresh) the demo company "Kirill's Windows"
fieldcrm generate --customers 100000  a large synthetic organisation for benchmarks (COPY)
fieldcrm create-org --name N --admin-email E --admin-name A   a new organisation + admin
fieldcrm import-customers FILE --as EMAIL [--dry-run]        CSV import with a progress bar
fieldcrm serve [--host H] [--port P]  run the API and web client
fieldcrm rebuild-reports [--org ID]   recompute the reports' daily roll-ups from the raw rows
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from backend.config import ConfigError, get_settings


def _database_url() -> str:
    url = os.environ.get("FIELDCRM_DATABASE_URL", "")
    if not url:
        sys.exit("FIELDCRM_DATABASE_URL is not set (make demo sets it for you)")
    return url


def cmd_migrate(_: argparse.Namespace) -> None:
    """Run the Alembic migrations."""
    from backend.db.migrate import upgrade

    upgrade(_database_url())
    print("database schema is up to date", file=sys.stderr)


def cmd_seed_demo(args: argparse.Namespace) -> None:
    """Create the demo organisation (idempotent)."""
    from backend.seed.demo import DEMO_PASSWORD_ENV, seed_demo

    summary = asyncio.run(seed_demo(_database_url(), customers=args.customers))
    print(summary, file=sys.stderr)
    if DEMO_PASSWORD_ENV not in os.environ:
        print("(demo passwords can be changed with FIELDCRM_DEMO_PASSWORD)", file=sys.stderr)


def cmd_generate(args: argparse.Namespace) -> None:
    """Generate a large synthetic organisation through COPY."""
    from backend.seed.generate import generate

    result = asyncio.run(generate(_database_url(), customers=args.customers, seed=args.seed))
    print(result, file=sys.stderr)


def cmd_create_org(args: argparse.Namespace) -> None:
    """Create an organisation and its first admin; the password is asked for on the terminal."""
    from backend.seed.orgs import create_organization

    password = os.environ.get("FIELDCRM_ADMIN_PASSWORD") or getpass.getpass("Admin password: ")
    org_id = asyncio.run(
        create_organization(
            _database_url(),
            name=args.name,
            admin_email=args.admin_email,
            admin_name=args.admin_name,
            password=password,
            time_zone=args.time_zone,
            currency=args.currency,
            locale=args.locale,
        )
    )
    print(f"organisation {org_id} created; log in as {args.admin_email}", file=sys.stderr)


def cmd_import_customers(args: argparse.Namespace) -> None:
    """Import a CSV of customers as the given user, with a progress bar."""
    from backend.customers.cli_import import run_import

    exit_code = asyncio.run(
        run_import(_database_url(), args.file, as_email=args.as_email, dry_run=args.dry_run)
    )
    sys.exit(exit_code)


def cmd_serve(args: argparse.Namespace) -> None:
    """Run the ASGI app with uvicorn."""
    import uvicorn

    try:
        get_settings()
    except ConfigError as exc:
        sys.exit(str(exc))
    print(f"\n  fieldcrm is running at http://{args.host}:{args.port}/", file=sys.stderr)
    print(f"  API docs:  http://{args.host}:{args.port}/api/docs\n", file=sys.stderr)
    if args.show_demo_logins:
        from backend.seed.demo import demo_logins_text

        print(demo_logins_text(), file=sys.stderr)
    uvicorn.run(
        "backend.app:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
    )


def cmd_worker(args: argparse.Namespace) -> None:
    """Run the background worker (SLA scans, maintenance)."""
    from backend.worker import run_worker

    try:
        settings = get_settings()
    except ConfigError as exc:
        sys.exit(str(exc))
    print("  fieldcrm worker running (SLA scans every 20 s); Ctrl+C stops it", file=sys.stderr)
    asyncio.run(run_worker(settings, concurrency=args.concurrency))


def cmd_rebuild_reports(args: argparse.Namespace) -> None:
    """Recompute the owner's reports' roll-ups (all organisations, or one)."""
    from backend.appraisal.report_jobs import rebuild_report_rollups_at

    done = asyncio.run(rebuild_report_rollups_at(_database_url(), args.org))
    print(f"report roll-ups rebuilt: {done}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fieldcrm`` command."""
    parser = argparse.ArgumentParser(
        prog="fieldcrm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="bring the schema up to date").set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed-demo", help="create the demo company")
    seed.add_argument("--customers", type=int, default=320)
    seed.set_defaults(func=cmd_seed_demo)

    gen = sub.add_parser("generate", help="large synthetic data set for benchmarks")
    gen.add_argument("--customers", type=int, default=100_000)
    gen.add_argument("--seed", type=int, default=42)
    gen.set_defaults(func=cmd_generate)

    org = sub.add_parser("create-org", help="create an organisation and its admin")
    org.add_argument("--name", required=True)
    org.add_argument("--admin-email", required=True)
    org.add_argument("--admin-name", required=True)
    org.add_argument("--time-zone", default="UTC")
    org.add_argument("--currency", default="EUR")
    org.add_argument("--locale", default="en")
    org.set_defaults(func=cmd_create_org)

    imp = sub.add_parser("import-customers", help="import customers from CSV")
    imp.add_argument("file")
    imp.add_argument("--as", dest="as_email", required=True, help="email of the importing user")
    imp.add_argument("--dry-run", action="store_true")
    imp.set_defaults(func=cmd_import_customers)

    serve = sub.add_parser("serve", help="run the API and web client")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--show-demo-logins", action="store_true")
    serve.set_defaults(func=cmd_serve)

    rebuild = sub.add_parser("rebuild-reports", help="recompute the reports' roll-ups")
    rebuild.add_argument("--org", default=None, help="one organisation's id (default: all)")
    rebuild.set_defaults(func=cmd_rebuild_reports)

    worker = sub.add_parser("worker", help="run the background jobs (SLA scans...)")
    worker.add_argument("--concurrency", type=int, default=2)
    worker.set_defaults(func=cmd_worker)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fieldcrm`` script."""
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
