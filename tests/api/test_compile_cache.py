"""The API compiles stored ruleset versions through the DSL's one cache (no second cache of its own)."""

from __future__ import annotations

import hashlib

from api.rating import compile_source, compiled
from dsl.compiler import compile_ruleset


def test_stored_versions_share_the_dsl_cache() -> None:
    src = "ruleset cached currency EUR timezone UTC\ntariff t { vat 19%\n energy 0.42 per kWh }\n"
    sha = hashlib.sha256(src.encode()).hexdigest()
    first = compile_ruleset(src, "upload.evb").ruleset
    assert first is not None
    assert compiled(sha, src, "stored.evb") is first
    assert compile_source(src).ruleset is first
