"""Compiling stored rulesets and rating sessions with them.

Compiled rulesets come from the DSL's one cache, keyed by content hash (the DSL contract: a
compiled ruleset is a pure function of its source), so a batch of thousands of sessions compiles
each version once.
Which version rates a session: the one in force at the session start, i.e. the latest
``effective_from <= start`` (ties: the higher version), taken from the location's ruleset when it
has one, else from all of the tenant's rulesets.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from store.errors import InvalidInput
from store.models import RulesetVersion
from store.repo import Scope

__all__ = ["VersionIndex", "compile_source", "compiled", "dsl_available", "products_known", "rating_context",
           "versions_billing_uses"]

def dsl_available() -> bool:
    try:
        from dsl import compile_ruleset  # noqa: F401
    except ImportError:
        return False
    return True


def compile_source(source: str, filename: str = "<ruleset>") -> Any:
    """Compile ``source`` (through the DSL's compile cache)."""
    try:
        from dsl import compile_ruleset
    except ImportError:
        raise InvalidInput("dsl_unavailable", "the pricing DSL compiler is not installed") from None
    return compile_ruleset(source, filename)


def compiled(sha256: str, source: str, filename: str = "<ruleset>") -> Any:
    """The compiled ruleset for a stored source (``sha256`` is the stored hash of ``source``; the
    compile cache hashes the source itself, so a row whose hash is stale cannot get another's)."""
    res = compile_source(source, filename)
    if not res.ok or res.ruleset is None:
        raise InvalidInput("ruleset_does_not_compile", f"stored ruleset {filename} no longer compiles")
    return res.ruleset


@dataclass
class VersionIndex:
    """All published versions of one tenant, ready for 'which version was in force at t'."""

    by_ruleset: dict[str, list[RulesetVersion]]
    everything: list[RulesetVersion]

    @classmethod
    def load(cls, scope: Scope) -> VersionIndex:
        rows = list(scope.db.execute(
            select(RulesetVersion).where(RulesetVersion.tenant_id == scope.tenant_id)
            .order_by(RulesetVersion.effective_from, RulesetVersion.version)).scalars())
        by: dict[str, list[RulesetVersion]] = {}
        for v in rows:
            by.setdefault(v.ruleset_id, []).append(v)
        return cls(by, rows)

    @staticmethod
    def _pick(versions: Sequence[RulesetVersion], at: datetime) -> RulesetVersion | None:
        keys = [v.effective_from for v in versions]
        i = bisect.bisect_right(keys, at)
        return versions[i - 1] if i else None

    def in_force(self, at: datetime, ruleset_id: str | None = None) -> RulesetVersion | None:
        if ruleset_id:
            return self._pick(self.by_ruleset.get(ruleset_id, []), at)
        return self._pick(self.everything, at)


def rating_context(scope: Scope, ruleset: Any, start: datetime, end: datetime, version: str = "") -> Any:
    """A ``RatingContext`` with the tenant's price series over ``start..end`` and the version label
    the trace names."""
    from runtime.rating import RatingContext

    return RatingContext(series=_load_series(scope, start, end), version=version)


def _load_series(scope: Scope, start: datetime, end: datetime) -> dict[str, Any]:
    """The tenant's series over ``start..end``, per kWh (``per MWh`` series divided by 1000), with
    their intervals' ends: a moment in a gap between two imports has no price."""
    from store.prices import load_series

    return dict(load_series(scope.db, scope.tenant_id, start, end))


def versions_billing_uses(scope: Scope, at: datetime) -> list[RulesetVersion]:
    """The versions a billing cycle from ``at`` on can price with: the tenant's version in force at
    ``at`` (the one ``billing.assemble_draft`` takes, whatever its ruleset) and those published to
    take effect later."""
    index = VersionIndex.load(scope)
    now = index.in_force(at)
    return ([now] if now is not None else []) + [v for v in index.everything if v.effective_from > at]


def products_known(scope: Scope, at: datetime) -> dict[str, list[str]]:
    """Product name -> the rulesets (by their DSL name) that sell it, over each of the tenant's
    rulesets' version in force at ``at`` and its versions to come: what a contract may name."""
    index = VersionIndex.load(scope)
    known: dict[str, list[str]] = {}
    for ruleset_id, versions in index.by_ruleset.items():
        now = index.in_force(at, ruleset_id)
        for v in ([now] if now is not None else []) + [v for v in versions if v.effective_from > at]:
            rs = compiled(v.sha256, v.source, f"{v.dsl_name or v.id}.evb")
            for name in rs.products:
                if v.dsl_name not in known.setdefault(name, []):
                    known[name].append(v.dsl_name)
    return known
