"""``python -m src.mlops.persistence {migrate,status,url}`` -- database chores until ``hpo db`` wraps them.

The database is ``DATABASE_URL``, else the embedded server in ``$HPO_HOME`` (default ``./.hpo``).
Exit codes: 0 ok, 2 migration refused or failed, 3 database unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..errors import DatabaseUnavailableError, MigrationError
from .database import redact_dsn
from .embedded import resolve_database_url
from .migrations import migrate, migration_status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.mlops.persistence", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["migrate", "status", "url"])
    ap.add_argument("--migrations-dir", default=None, help="default: the checkout's database/migrations, or the copy a wheel ships")
    args = ap.parse_args(argv)
    try:
        dsn = resolve_database_url()
        if args.command == "url":
            print(redact_dsn(dsn))
        elif args.command == "migrate":
            applied = asyncio.run(migrate(dsn, migrations_dir=args.migrations_dir))
            print(f"applied {applied}" if applied else "already up to date")
        else:
            for s in asyncio.run(migration_status(dsn, migrations_dir=args.migrations_dir)):
                state = "pending" if s.applied_at is None else f"applied {s.applied_at:%Y-%m-%d %H:%M:%S}"
                if s.checksum_ok is False:
                    state += "  CHANGED SINCE APPLIED"
                print(f"{s.version:>4}  {s.filename or '(no file: database newer than code)'}  {state}")
    except MigrationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DatabaseUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
