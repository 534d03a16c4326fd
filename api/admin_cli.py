"""``evbill tenants`` / ``evbill users`` / ``evbill keys``: what an operator does on the server's
own machine before (or without) the API: create a tenant, add a second person for four-eyes
publishing and approval, and issue a new key when the admin key is lost.

They open the server's database (``EVBILL_DATABASE_URL``, default ``var/evbill.db``), bring it to
the head migration as ``evbill serve`` does, and write through the store functions the API uses,
so every change lands in the tenant's audit chain (actor ``cli``). A key is printed once, on
standard output, and never stored in clear.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # sqlalchemy is imported when a command runs: every evbill command builds this parser
    from sqlalchemy.orm import Session

CLI_ACTOR_ID = "cli"


def add_parsers(sub: Any, lazy: Any) -> None:
    """Registers the subcommands on the top-level parser (``api/cli.py``)."""
    t = sub.add_parser("tenants", help="list or create tenants (on the server's database)")
    tsub = t.add_subparsers(dest="tenants_command", required=True, metavar="COMMAND")
    s = tsub.add_parser("list", help="tenants with their ids")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lazy("api.admin_cli", "tenants_list"))
    s = tsub.add_parser("create", help="a new tenant with an admin user; prints its admin key once")
    s.add_argument("name")
    s.add_argument("--admin-email", default="admin@localhost")
    s.add_argument("--currency", default="EUR")
    s.add_argument("--timezone", default="Europe/Berlin")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lazy("api.admin_cli", "tenants_create"))

    u = sub.add_parser("users", help="list or add a tenant's users (a second person for four eyes)")
    usub = u.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    s = usub.add_parser("list", help="a tenant's users and roles")
    s.add_argument("--tenant", help="tenant id or name (needed when there are several)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lazy("api.admin_cli", "users_list"))
    s = usub.add_parser("add", help="a new user with a key of its own; prints the key once")
    s.add_argument("--tenant", help="tenant id or name (needed when there are several)")
    s.add_argument("--email", required=True)
    s.add_argument("--role", required=True,
                   help="admin, analyst, operator, approver (finance tasks), auditor or partner")
    s.add_argument("--name", default="")
    s.add_argument("--partner", help="partner id (role partner: sees only its own sites)")
    s.add_argument("--password-stdin", action="store_true",
                   help="also set a console password, read from standard input (first line)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lazy("api.admin_cli", "users_add"))
    s = usub.add_parser("passwd", help="set a user's password for the web console (ends its console sessions)")
    s.add_argument("--tenant", help="tenant id or name (needed when there are several)")
    s.add_argument("--email", required=True)
    s.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input (first line) instead of asking twice")
    s.set_defaults(func=lazy("api.admin_cli", "users_passwd"))

    k = sub.add_parser("keys", help="issue a new API key for an existing user (a lost admin key)")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    s = ksub.add_parser("issue", help="a new key for the user with this e-mail; prints it once")
    s.add_argument("--tenant", help="tenant id or name (needed when there are several)")
    s.add_argument("--email", required=True)
    s.add_argument("--name", default="issued by evbill keys issue")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lazy("api.admin_cli", "keys_issue"))


class CliError(Exception):
    pass


@contextmanager
def _db() -> Iterator[Session]:
    from sqlalchemy.orm import Session

    from store.db import database_url, make_engine, migrate

    engine = make_engine(database_url())
    try:
        migrate(engine)
        with Session(engine) as db:
            yield db
    finally:
        engine.dispose()


def _tenant(db: Session, ref: str | None) -> Any:
    from sqlalchemy import select

    from store.models import Tenant

    tenants = list(db.execute(select(Tenant).order_by(Tenant.created_at, Tenant.id)).scalars())
    if ref:
        hits = [t for t in tenants if ref in (t.id, t.name)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise CliError(f"no tenant with id or name {ref!r} (evbill tenants list shows them)")
        raise CliError(f"several tenants are named {ref!r}: give the id")
    if len(tenants) == 1:
        return tenants[0]
    if not tenants:
        raise CliError("the database has no tenant yet: start `evbill serve` once or run `evbill tenants create NAME`")
    raise CliError("the database has several tenants: say which with --tenant (evbill tenants list shows them)")


def _out(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data) if getattr(args, "json", False) else text)


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        fn(args)
    except CliError as e:
        print(f"evbill: {e}", file=sys.stderr)
        return 1
    return 0


def _actor(tenant_id: str) -> Any:
    from store.audit import Actor

    return Actor(tenant_id, CLI_ACTOR_ID, "admin")


def tenants_list(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> None:
        from sqlalchemy import select

        from store.models import Tenant

        with _db() as db:
            rows = [{"id": t.id, "name": t.name, "currency": t.currency, "timezone": t.timezone}
                    for t in db.execute(select(Tenant).order_by(Tenant.created_at, Tenant.id)).scalars()]
        if args.json:
            print(json.dumps(rows))
        else:
            for r in rows:
                print(f"{r['id']}  {r['name']}  ({r['currency']}, {r['timezone']})")
    return _run(run, args)


def tenants_create(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> None:
        from pydantic_core import PydanticCustomError

        from api.validation import check_currency, check_timezone
        from store.tenants import bootstrap_tenant

        # the API's own master-data checks decide, so a tenant made here meets the same rules
        for check, value, what in ((check_currency, args.currency, "currency: an ISO 4217 code such as EUR"),
                                   (check_timezone, args.timezone, "time zone: an IANA zone such as Europe/Berlin")):
            try:
                check(value)
            except PydanticCustomError:
                label, example = what.split(": ")
                raise CliError(f"unknown {label} {value!r}: {example}") from None

        with _db() as db:
            tenant, cred = bootstrap_tenant(db, args.name, admin_email=args.admin_email,
                                            currency=args.currency, timezone=args.timezone)
            _out(args, {"tenant_id": tenant.id, "name": tenant.name, "user_id": cred.user_id, "key": cred.key},
                 f"tenant {tenant.id} ({tenant.name})\nadmin {args.admin_email}, key (shown once):\n{cred.key}")
    return _run(run, args)


def users_list(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> None:
        from sqlalchemy import select

        from store.models import User

        with _db() as db:
            tenant = _tenant(db, args.tenant)
            rows = [{"id": u.id, "email": u.email, "role": u.role, "active": u.active, "partner_id": u.partner_id}
                    for u in db.execute(select(User).where(User.tenant_id == tenant.id)
                                        .order_by(User.created_at, User.id)).scalars()]
        if args.json:
            print(json.dumps(rows))
        else:
            for r in rows:
                print(f"{r['id']}  {r['email']}  {r['role']}{'' if r['active'] else '  (inactive)'}")
    return _run(run, args)


def users_add(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> None:
        from sqlalchemy import select

        from store.audit import append_audit
        from store.models import Partner, User
        from store.repo import snapshot
        from store.tenants import create_user, issue_key

        with _db() as db:
            tenant = _tenant(db, args.tenant)
            if db.execute(select(User.id).where(User.tenant_id == tenant.id, User.email == args.email)).first():
                raise CliError(f"tenant {tenant.id} already has a user {args.email!r} "
                               "(evbill keys issue gives it a new key)")
            from store.models import ROLES

            if args.role not in ROLES:
                raise CliError(f"unknown role {args.role!r}: one of {', '.join(ROLES)}")
            if args.role == "partner" and not args.partner:
                raise CliError("a partner user needs --partner PARTNER_ID")
            if args.partner and db.execute(select(Partner.id).where(Partner.tenant_id == tenant.id,
                                                                     Partner.id == args.partner)).first() is None:
                raise CliError(f"tenant {tenant.id} has no partner {args.partner!r}")
            password = _read_password(args) if args.password_stdin else None
            user = create_user(db, tenant.id, args.email, args.role, name=args.name, partner_id=args.partner)
            db.flush()
            if password is not None:
                _set_password(db, tenant.id, user.id, password)
            key, plain = issue_key(db, tenant.id, user.id, "issued by evbill users add")
            db.flush()
            actor = _actor(tenant.id)
            append_audit(db, actor, "user.create", "app_user", user.id, None, snapshot(user))
            append_audit(db, actor, "api_key.create", "api_key", key.id, None, snapshot(key, ("secret_sha256",)))
            db.commit()
            _out(args, {"tenant_id": tenant.id, "user_id": user.id, "role": user.role, "key": plain},
                 f"user {user.id} ({args.email}, {args.role}) in tenant {tenant.id}\nkey (shown once):\n{plain}")
    return _run(run, args)


def _read_password(args: argparse.Namespace) -> str:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new console password: ")
    if getpass.getpass("again: ") != first:
        raise CliError("the two passwords differ")
    return first


def _set_password(db: Session, tenant_id: str, user_id: str, password: str) -> None:
    from store.audit import append_audit
    from store.console import PasswordTooShort, set_password

    try:
        set_password(db, tenant_id, user_id, password)
    except PasswordTooShort as exc:
        raise CliError(str(exc)) from None
    # the audit says that it changed, never what to
    append_audit(db, _actor(tenant_id), "user.password_set", "app_user", user_id, None, {"console": True})


def users_passwd(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> None:
        from sqlalchemy import select

        from store.models import User

        with _db() as db:
            tenant = _tenant(db, args.tenant)
            user = db.execute(select(User).where(User.tenant_id == tenant.id, User.email == args.email)).scalar()
            if user is None:
                raise CliError(f"tenant {tenant.id} has no user {args.email!r} (evbill users list shows them)")
            _set_password(db, tenant.id, user.id, _read_password(args))
            db.commit()
            print(f"console password set for {args.email} ({user.role}) in tenant {tenant.id}"
                  + ("" if user.active else " (the user is inactive: it cannot sign in)"))
    return _run(run, args)


def keys_issue(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> None:
        from sqlalchemy import select

        from store.audit import append_audit
        from store.models import User
        from store.repo import snapshot
        from store.tenants import issue_key

        with _db() as db:
            tenant = _tenant(db, args.tenant)
            user = db.execute(select(User).where(User.tenant_id == tenant.id, User.email == args.email)).scalar()
            if user is None:
                raise CliError(f"tenant {tenant.id} has no user {args.email!r} (evbill users list shows them)")
            if not user.active:
                raise CliError(f"user {args.email!r} is inactive: activate it through the API first")
            key, plain = issue_key(db, tenant.id, user.id, args.name)
            db.flush()
            append_audit(db, _actor(tenant.id), "api_key.create", "api_key", key.id, None,
                         snapshot(key, ("secret_sha256",)))
            db.commit()
            _out(args, {"tenant_id": tenant.id, "user_id": user.id, "role": user.role, "key": plain},
                 f"new key for {args.email} ({user.role}) in tenant {tenant.id} (shown once):\n{plain}")
    return _run(run, args)
