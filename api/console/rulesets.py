"""The console's rulesets: the list, and per ruleset an editor with live diagnostics, a
simulation of the text in the editor against chosen sessions beside the version in force, the
drafts (published with four eyes), the version history and the diff between two versions.

Everything goes through the code the API runs: the DSL's checker (``api.rating.compile_source``,
the compile cache of ``evbill check``), ``api.areas.rulesets.create_draft`` and ``publish`` (the
publisher may not be the draft's author), ``api.session_io.rate_facts`` (the simulation the API's
``POST /rulesets/simulate`` does). The editor's live check is ``POST /console/rulesets/check``, a
small JSON answer the page's own script (``ruleset-editor.js``, no inline script under the CSP)
asks for while the analyst types; without script the Check button posts the form and the page
shows the same diagnostics.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy import func, select

from api.console.i18n import Texts, add_texts
from api.console.pages import Form, _may, _NotFound, _page, _problem_text
from api.console.session import check_csrf, console_allow, session_of
from store.errors import DomainError

__all__ = ["HTML_ROUTES", "handlers"]

MAX_SOURCE = 200_000
# the editor's form: ``session`` comes once per ticked box (a list when there are several)
EditorForm = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
PICKABLE = 30  # the latest sessions offered for a simulation

HTML_ROUTES = {
    "GET /console/rulesets": "read",
    "POST /console/rulesets/check": "read",
    "GET /console/rulesets/{ruleset_id:str}": "read",
    "POST /console/rulesets/{ruleset_id:str}/check": "read",
    "POST /console/rulesets/{ruleset_id:str}/drafts": "ruleset_write",
    "POST /console/rulesets/{ruleset_id:str}/simulate": "ruleset_write",
    "POST /console/rulesets/{ruleset_id:str}/drafts/{draft_id:str}/publish": "publish",
    "GET /console/rulesets/{ruleset_id:str}/diff": "read",
}

add_texts({
    "rulesets": ("Regelwerke", "Rulesets"),
    "ruleset": ("Regelwerk", "Ruleset"),
    "no_rulesets": ("Noch keine Regelwerke.", "No rulesets yet."),
    "versions": ("Versionen", "Versions"),
    "version": ("Version", "Version"),
    "in_force": ("In Kraft", "In force"),
    "none_in_force": ("keine", "none"),
    "drafts": ("Entwürfe", "Drafts"),
    "latest_draft": ("Letzter Entwurf", "Latest draft"),
    "editor": ("Editor", "Editor"),
    "source_text": ("Regelwerk-Text (DSL)", "Ruleset text (DSL)"),
    "diagnostics": ("Prüfung", "Diagnostics"),
    "diag_clean": ("Keine Fehler, keine Warnungen.", "No errors, no warnings."),
    "diag_counts": ("Fehler: {errors}, Warnungen: {warnings}", "Errors: {errors}, warnings: {warnings}"),
    "diag_live": ("Wird beim Tippen geprüft.", "Checked as you type."),
    "severity_error": ("Fehler", "error"),
    "severity_warning": ("Warnung", "warning"),
    "hint": ("Hinweis", "help"),
    "go_to": ("Zu Zeile {line}, Spalte {col} springen", "Go to line {line}, column {col}"),
    "check": ("Prüfen", "Check"),
    "save_draft": ("Als Entwurf speichern", "Save as draft"),
    "simulate": ("Simulieren", "Simulate"),
    "simulation": ("Simulation", "Simulation"),
    "sessions_to_simulate": ("Ladevorgänge für die Simulation (die letzten {n})",
                             "Sessions to simulate (the latest {n})"),
    "no_sessions_to_pick": ("Noch keine Ladevorgänge gespeichert.", "No sessions stored yet."),
    "pick_sessions": ("Bitte mindestens einen Ladevorgang wählen.", "Please choose at least one session."),
    "draft_has_errors_sim": ("Der Text hat Fehler: erst beheben, dann simulieren.",
                             "The text has errors: fix them, then simulate."),
    "sim_intro": ("Der Text im Editor gegen {version} (die Version, die beim Start jedes Ladevorgangs in "
                  "Kraft war), netto.",
                  "The text in the editor against {version} (the version in force at each session's start), net."),
    "sim_in_force": ("in Kraft", "in force"),
    "sim_draft": ("Entwurf", "draft"),
    "difference": ("Differenz", "Difference"),
    "unchanged": ("unverändert", "unchanged"),
    "sim_total": ("Summe", "Total"),
    "sim_failed": ("nicht bewertbar: {message}", "cannot be rated: {message}"),
    "sim_changed": ("{n} von {m} Ladevorgängen ändern sich.", "{n} of {m} sessions change."),
    "line_component": ("Bestandteil", "Component"),
    "rule": ("Regel", "Rule"),
    "author": ("Autor", "Author"),
    "created": ("Erstellt", "Created"),
    "state": ("Zustand", "State"),
    "draft_ok": ("fehlerfrei", "clean"),
    "draft_errors": ("mit Fehlern", "has errors"),
    "open_in_editor": ("Im Editor öffnen", "Open in editor"),
    "publish": ("Veröffentlichen", "Publish"),
    "effective_from": ("Gültig ab", "Effective from"),
    "publish_note": ("Notiz", "Note"),
    "four_eyes_author": ("Vier-Augen-Prinzip: Sie haben diesen Entwurf geschrieben, jemand anderes muss ihn "
                         "veröffentlichen.",
                         "Four eyes: you wrote this draft, someone else must publish it."),
    "published_by": ("Veröffentlicht von", "Published by"),
    "published_at": ("Veröffentlicht am", "Published at"),
    "tariffs": ("Tarife", "Tariffs"),
    "diff": ("Vergleich", "Diff"),
    "diff_of": ("Version {a} → Version {b}", "Version {a} → version {b}"),
    "compare": ("Vergleichen", "Compare"),
    "from_version": ("Von Version", "From version"),
    "to_version": ("Zu Version", "To version"),
    "no_difference": ("Die beiden Versionen sind gleich.", "The two versions are the same."),
    "no_versions": ("Noch keine veröffentlichte Version.", "No published version yet."),
    "no_drafts": ("Noch keine Entwürfe.", "No drafts yet."),
    "msg_draft_saved": ("Entwurf gespeichert.", "Draft saved."),
    "msg_published": ("Version veröffentlicht.", "Version published."),
    "err_effective_from": ("Bitte ein gültiges Datum mit Uhrzeit angeben.", "Please give a valid date and time."),
    "err_source_required": ("Der Text ist leer.", "The text is empty."),
    "err_publisher_is_author": ("Vier-Augen-Prinzip: Wer den Entwurf geschrieben hat, darf ihn nicht "
                                "veröffentlichen.",
                                "Four eyes: whoever wrote the draft may not publish it."),
    "err_draft_has_errors": ("Der Entwurf hat Fehler und kann nicht veröffentlicht werden.",
                             "The draft has errors and cannot be published."),
    "back_to": ("Zurück zu {name}", "Back to {name}"),
    "published_as": ("Veröffentlicht als Version {version}.", "Published as version {version}."),
    "lines_in_force": ("Positionen in Kraft", "Lines in force"),
    "text_changes": ("Text gegenüber Version {version}", "Text against version {version}"),
    "text_unchanged": ("Der Text ist derselbe wie der von Version {version}.",
                       "The text is the same as version {version}'s."),
    "lines_draft": ("Positionen Entwurf", "Lines of the draft"),
    "session": ("Ladevorgang", "Session"),
    "start": ("Beginn", "Start"),
})


# ------------------------------------------------------------------------------ checking

def _check(source: str) -> tuple[bool, list[dict[str, Any]]]:
    """The checker's diagnostics for ``source``, each with its ``file:line:col`` text, the source
    line and caret as ``evbill check`` prints them (``dsl.diagnostics.render``)."""
    from api.rating import compile_source
    from dsl.diagnostics import render

    res = compile_source(source, "editor.evb")
    out = []
    for d in res.diagnostics:
        item = d.to_dict()
        item["text"] = render(d, source)
        out.append(item)
    return bool(res.ok), out


def _counts(diags: list[dict[str, Any]]) -> dict[str, int]:
    errors = sum(1 for d in diags if d["severity"] == "error")
    return {"errors": errors, "warnings": len(diags) - errors}


@post("/console/rulesets/check", guards=[console_allow("read")], include_in_schema=False, status_code=200)
async def check_json(request: Request[Any, Any, Any]) -> Response[Any]:
    """``{"source": "..."}`` -> ``{"ok", "errors", "warnings", "diagnostics": [...]}``; the page's
    script sends the session's CSRF token as ``X-CSRF-Token``."""
    import anyio

    sess = session_of(request)
    check_csrf(request, sess.csrf, None)
    try:
        body = await request.json()
    except Exception:  # noqa: BLE001  (any body that is not JSON)
        body = None
    source = body.get("source") if isinstance(body, dict) else None
    if not isinstance(source, str) or len(source) > MAX_SOURCE:
        return Response({"type": "about:blank", "title": "invalid source", "status": 422,
                         "code": "invalid_source", "detail": f"send {{\"source\": text}} of at most {MAX_SOURCE} "
                                                             "characters"},
                        status_code=422, media_type="application/problem+json")
    ok, diags = await anyio.to_thread.run_sync(_check, source)
    return Response({"ok": ok, **_counts(diags), "diagnostics": diags},
                    headers={"Cache-Control": "no-store"})


# ------------------------------------------------------------------------------ reading

def _emails(db: Any, tenant_id: str, ids: set[str]) -> dict[str, str]:
    from store.models import User

    if not ids:
        return {}
    rows = db.execute(select(User.id, User.email).where(User.tenant_id == tenant_id, User.id.in_(ids)))  # type: ignore[attr-defined]
    return {r.id: r.email for r in rows}


@get("/console/rulesets", guards=[console_allow("read")], include_in_schema=False)
async def rulesets(request: Request[Any, Any, Any]) -> Template:
    from store.models import Ruleset, RulesetDraft, RulesetVersion, Tenant
    from store.types import utcnow

    tenant_id = request.user.tenant_id
    now = utcnow()
    with request.app.state.read_sessions() as db:
        rows = db.execute(select(Ruleset).where(Ruleset.tenant_id == tenant_id).order_by(Ruleset.name)  # type: ignore[arg-type]
                          .limit(500)).scalars().all()
        versions = db.execute(select(RulesetVersion).where(RulesetVersion.tenant_id == tenant_id)  # type: ignore[arg-type]
                              .order_by(RulesetVersion.effective_from, RulesetVersion.version)).scalars().all()
        drafts = dict(db.execute(select(RulesetDraft.ruleset_id, func.count()).where(  # type: ignore[call-overload]
            RulesetDraft.tenant_id == tenant_id).group_by(RulesetDraft.ruleset_id)).all())
        tz = ZoneInfo(db.get(Tenant, tenant_id).timezone)
    by: dict[str, list[Any]] = {}
    for v in versions:
        by.setdefault(v.ruleset_id, []).append(v)
    items = []
    for r in rows:
        vs = by.get(r.id, [])
        in_force = [v for v in vs if v.effective_from <= now]
        items.append({"ruleset": r, "versions": len(vs), "in_force": in_force[-1] if in_force else None,
                      "drafts": drafts.get(r.id, 0)})
    return _page(request, "rulesets.html", items=items, tz=tz)


@dataclass
class Editor:
    """What the ruleset page shows besides the ruleset itself."""

    source: str = ""
    draft_id: str = ""
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    checked: bool = False
    picked: set[str] = field(default_factory=set)
    simulation: dict[str, Any] | None = None
    msg: str | None = None
    error: str | None = None
    error_for: str | None = None


def _ruleset_page(request: Request[Any, Any, Any], ruleset_id: str, ed: Editor, status_code: int = 200) -> Template:
    from store.models import ChargingSession, Ruleset, RulesetDraft, RulesetVersion, Tenant

    actor = request.user
    with request.app.state.read_sessions() as db:
        rs = db.get(Ruleset, ruleset_id)
        if rs is None or rs.tenant_id != actor.tenant_id:
            raise _NotFound
        tenant = db.get(Tenant, actor.tenant_id)
        versions = db.execute(select(RulesetVersion).where(
            RulesetVersion.tenant_id == actor.tenant_id, RulesetVersion.ruleset_id == rs.id)  # type: ignore[arg-type]
            .order_by(RulesetVersion.version.desc())).scalars().all()  # type: ignore[attr-defined]
        drafts = db.execute(select(RulesetDraft).where(
            RulesetDraft.tenant_id == actor.tenant_id, RulesetDraft.ruleset_id == rs.id)  # type: ignore[arg-type]
            .order_by(RulesetDraft.created_at.desc(), RulesetDraft.id.desc()).limit(20)).scalars().all()  # type: ignore[attr-defined]
        sessions = db.execute(select(ChargingSession).where(ChargingSession.tenant_id == actor.tenant_id)  # type: ignore[arg-type]
                              .order_by(ChargingSession.start.desc(), ChargingSession.id)  # type: ignore[attr-defined]
                              .limit(PICKABLE)).scalars().all()
        emails = _emails(db, actor.tenant_id, {d.author_id for d in drafts} | {v.author_id for v in versions}
                         | {v.publisher_id for v in versions})
        if not ed.source and not ed.checked:
            if ed.draft_id:
                chosen = db.get(RulesetDraft, ed.draft_id)
                if chosen is None or chosen.tenant_id != actor.tenant_id or chosen.ruleset_id != rs.id:
                    raise _NotFound
                ed.source = chosen.source
            elif versions:
                ed.source = versions[0].source
            elif drafts:
                ed.source = drafts[0].source
            else:
                ed.source = f"ruleset {rs.name} currency {tenant.currency} timezone {tenant.timezone}\n"
    if not ed.checked:
        _ok, ed.diagnostics = _check(ed.source)
    if not ed.picked and not ed.checked:
        ed.picked = {s.id for s in sessions[:5]}
    from store.types import utcnow

    now = utcnow()
    in_force = next((v for v in sorted(versions, key=lambda v: (v.effective_from, v.version), reverse=True)
                     if v.effective_from <= now), None)
    tz = ZoneInfo(tenant.timezone)
    # a simulation shows what the editor's text changes against the version in force
    changes = (_diff_rows(in_force.source, ed.source, f"{rs.name}@v{in_force.version}", f"{rs.name} (editor)")
               if ed.simulation is not None and in_force is not None else [])
    return _page(request, "ruleset.html", changes=changes, status_code=status_code, page_url=f"/console/rulesets/{rs.id}",
                 rs=rs, versions=versions, drafts=drafts, sessions=sessions, emails=emails, ed=ed,
                 counts=_counts(ed.diagnostics), in_force=in_force, tz=tz, published=_published(versions),
                 default_effective=now.astimezone(tz).replace(second=0, microsecond=0, tzinfo=None).isoformat(),
                 may_write=_may(request, "ruleset_write"), may_publish=_may(request, "publish"),
                 me_id=actor.user_id)


def _published(versions: Any) -> dict[str, list[int]]:
    """Draft id -> the versions it was published as (one draft can take effect more than once)."""
    out: dict[str, list[int]] = {}
    for v in sorted(versions, key=lambda v: v.version):
        out.setdefault(v.draft_id, []).append(v.version)
    return out


@get("/console/rulesets/{ruleset_id:str}", guards=[console_allow("read")], include_in_schema=False)
async def ruleset(request: Request[Any, Any, Any], ruleset_id: str, draft: str | None = None,
                  msg: str | None = None) -> Template:
    import anyio

    ed = Editor(draft_id=(draft or "")[:40], msg=msg if msg in ("draft_saved", "published") else None)
    return await anyio.to_thread.run_sync(_ruleset_page, request, ruleset_id, ed)


def _posted(request: Request[Any, Any, Any], data: dict[str, Any]) -> Editor:
    def one(key: str) -> str:
        v = data.get(key, "")
        return str(v[0] if isinstance(v, list) and v else v or "")

    sess = session_of(request)
    check_csrf(request, sess.csrf, one("_csrf"))
    source = one("source").replace("\r\n", "\n")[:MAX_SOURCE]
    picked = data.get("session", [])
    picked = picked if isinstance(picked, list) else [picked]
    return Editor(source=source, draft_id=one("draft_id")[:40], picked={str(x)[:40] for x in picked[:PICKABLE]})


@post("/console/rulesets/{ruleset_id:str}/check", guards=[console_allow("read")], include_in_schema=False,
      status_code=200)
async def check_form(request: Request[Any, Any, Any], ruleset_id: str, data: EditorForm) -> Template:
    import anyio

    ed = _posted(request, data)
    ed.checked = True
    _ok, ed.diagnostics = await anyio.to_thread.run_sync(_check, ed.source)
    return await anyio.to_thread.run_sync(_ruleset_page, request, ruleset_id, ed)


@post("/console/rulesets/{ruleset_id:str}/drafts", guards=[console_allow("ruleset_write")],
      include_in_schema=False, status_code=303)
async def save_draft(request: Request[Any, Any, Any], ruleset_id: str, data: EditorForm) -> Response[Any]:
    import anyio

    ed = _posted(request, data)
    t = Texts(session_of(request).language)
    if not ed.source.strip():
        ed.error, ed.error_for = t("err_source_required"), "editor"
        return await anyio.to_thread.run_sync(_ruleset_page, request, ruleset_id, ed, 422)

    def run() -> str:
        from api.areas.rulesets import create_draft
        from api.crud import open_scope
        from store.models import Ruleset

        with open_scope(request) as scope:
            rs = scope.repo(Ruleset, "ruleset", "rs").get(ruleset_id)
            draft = create_draft(scope, rs, ed.source)
            scope.commit()
            return str(draft.id)

    try:
        draft_id = await anyio.to_thread.run_sync(run)
    except DomainError as exc:
        if exc.status == 404:
            raise _NotFound from None
        ed.error, ed.error_for = _problem_text(t, exc), "editor"
        return await anyio.to_thread.run_sync(_ruleset_page, request, ruleset_id, ed, exc.status)
    return Redirect(f"/console/rulesets/{ruleset_id}?draft={draft_id}&msg=draft_saved", status_code=303)


@post("/console/rulesets/{ruleset_id:str}/simulate", guards=[console_allow("ruleset_write")],
      include_in_schema=False, status_code=200)
async def simulate(request: Request[Any, Any, Any], ruleset_id: str, data: EditorForm) -> Template:
    import anyio

    ed = _posted(request, data)
    t = Texts(session_of(request).language)
    ok, ed.diagnostics = await anyio.to_thread.run_sync(_check, ed.source)
    ed.checked = True
    status = 200
    if not ok:
        ed.error, ed.error_for, status = t("draft_has_errors_sim"), "simulation", 422
    elif not ed.picked:
        ed.error, ed.error_for, status = t("pick_sessions"), "simulation", 422
    else:
        ed.simulation = await anyio.to_thread.run_sync(_simulate, request, ruleset_id, ed)
    return await anyio.to_thread.run_sync(_ruleset_page, request, ruleset_id, ed, status)


def _simulate(request: Request[Any, Any, Any], ruleset_id: str, ed: Editor) -> dict[str, Any]:
    """Each chosen session rated by the editor's text and by the version of this ruleset in force
    at its start (the API's simulation: ``rate_facts``, nothing stored)."""
    from api.crud import open_scope
    from api.rating import VersionIndex, compile_source, compiled, rating_context
    from api.session_io import rate_facts
    from store.models import ChargingSession, Ruleset

    with open_scope(request) as scope:
        rs_row = scope.repo(Ruleset, "ruleset", "rs").get(ruleset_id)
        draft_rs = compile_source(ed.source, f"{rs_row.name}.evb").ruleset
        index = VersionIndex.load(scope)
        rows = scope.db.execute(select(ChargingSession).where(
            ChargingSession.tenant_id == scope.tenant_id, ChargingSession.id.in_(ed.picked))  # type: ignore[arg-type, attr-defined]
            .order_by(ChargingSession.start, ChargingSession.id)).scalars().all()  # type: ignore[arg-type]
        out = []
        totals: dict[str, dict[str, Decimal]] = {}
        changed = 0
        for s in rows:
            version = index.in_force(s.start, rs_row.id)
            before = None
            if version is not None:
                ctx = rating_context(scope, None, s.start, s.end, f"v{version.version}")
                before = rate_facts(scope, compiled(version.sha256, version.source), s.facts, s.tariff or None, ctx)
            after = rate_facts(scope, draft_rs, s.facts, s.tariff or None,
                               rating_context(scope, None, s.start, s.end, "draft"))
            row = _compare(s, version, before, after)
            if row["changed"]:
                changed += 1
            for side in ("before", "after"):
                r = row[side]
                if r and r["ok"]:
                    acc = totals.setdefault(r["currency"], {"before": Decimal(0), "after": Decimal(0)})
                    acc[side] += r["net"]
            out.append(row)
    return {"rows": out, "totals": totals, "changed": changed}


def _side(outcome: tuple[bool, dict[str, Any] | None, str | None, str | None] | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    ok, result, _code, message = outcome
    if not ok or result is None:
        return {"ok": False, "message": message or ""}
    return {"ok": True, "currency": result["currency"], "net": Decimal(result["totals"]["net"]),
            "gross": Decimal(result["totals"]["gross"]), "tariff": result.get("tariff", ""),
            "lines": [{"component": ln["component"], "description": ln.get("description") or ln["component"],
                       "quantity": Decimal(ln["quantity"]), "unit": ln.get("unit", ""),
                       "unit_price": Decimal(ln["unit_price"]), "net": Decimal(ln["net_rounded"]),
                       "rule": ln.get("rule", "")} for ln in result["lines"]]}


def _compare(s: Any, version: Any, before: Any, after: Any) -> dict[str, Any]:
    b, a = _side(before), _side(after)
    delta = None
    if b and a and b["ok"] and a["ok"] and b["currency"] == a["currency"]:
        delta = a["net"] - b["net"]
    lines_differ = bool(b and a and b.get("lines") != a.get("lines"))
    changed = delta != 0 if delta is not None else (b is None or a is None or not (b["ok"] and a["ok"]))
    return {"session": s, "version": version, "before": b, "after": a, "delta": delta,
            "changed": bool(changed or lines_differ)}


# ------------------------------------------------------------------------------ publishing

@post("/console/rulesets/{ruleset_id:str}/drafts/{draft_id:str}/publish", guards=[console_allow("publish")],
      include_in_schema=False, status_code=303)
async def publish(request: Request[Any, Any, Any], ruleset_id: str, draft_id: str, data: Form) -> Response[Any]:
    import anyio

    from api.areas.billing import resync_after_publish
    from api.areas.rulesets import PublishIn
    from api.areas.rulesets import publish as publish_draft
    from api.crud import open_scope
    from store.models import Ruleset, Tenant

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    t = Texts(sess.language)
    ed = Editor(draft_id=draft_id[:40])

    def refused(text: str, status: int) -> Any:
        ed.error, ed.error_for = text, draft_id
        return anyio.to_thread.run_sync(_ruleset_page, request, ruleset_id, ed, status)

    def run() -> str:
        with open_scope(request) as scope:
            rs = scope.repo(Ruleset, "ruleset", "rs").get(ruleset_id)
            tenant = scope.db.get(Tenant, scope.tenant_id)
            raw = data.get("effective_from", "").strip()
            try:
                at = datetime.fromisoformat(raw)
            except ValueError:
                raise _BadDate from None
            if at.tzinfo is None:  # the form's datetime-local is the tenant's local time
                at = at.replace(tzinfo=ZoneInfo(tenant.timezone))
            if not 1970 <= at.year <= 2200:
                raise _BadDate
            version = publish_draft(scope, rs, PublishIn(draft_id=draft_id, effective_from=at,
                                                         note=data.get("note", "").strip()[:500]))
            scope.commit()
            return str(version.id)

    try:
        version_id = await anyio.to_thread.run_sync(run)
    except _BadDate:
        return await refused(t("err_effective_from"), 422)
    except DomainError as exc:
        if exc.status == 404 and exc.code in ("ruleset_not_found", "ruleset_draft_not_found"):
            raise _NotFound from None
        return await refused(_problem_text(t, exc), exc.status)
    # after the commit, as the API: whatever Temporal answers, the version is published
    await resync_after_publish(request.app, sess.tenant_id, version_id)
    return Redirect(f"/console/rulesets/{ruleset_id}?msg=published", status_code=303)


class _BadDate(Exception):
    pass


def _diff_rows(old: str, new: str, old_name: str, new_name: str) -> list[tuple[str, str]]:
    """The unified diff's lines, each with its kind for the page's colours."""
    rows = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), fromfile=old_name, tofile=new_name,
                                     lineterm=""):
        kind = ("head" if line.startswith(("---", "+++")) else "hunk" if line.startswith("@@")
                else "add" if line.startswith("+") else "del" if line.startswith("-") else "same")
        rows.append((kind, line))
    return rows


# ------------------------------------------------------------------------------ history

@get("/console/rulesets/{ruleset_id:str}/diff", guards=[console_allow("read")], include_in_schema=False)
async def diff(request: Request[Any, Any, Any], ruleset_id: str, a: int | None = None,
               b: int | None = None) -> Template:
    from store.models import Ruleset, RulesetVersion

    actor = request.user
    with request.app.state.read_sessions() as db:
        rs = db.get(Ruleset, ruleset_id)
        if rs is None or rs.tenant_id != actor.tenant_id:
            raise _NotFound
        versions = {v.version: v for v in db.execute(select(RulesetVersion).where(
            RulesetVersion.tenant_id == actor.tenant_id, RulesetVersion.ruleset_id == rs.id)).scalars()}  # type: ignore[arg-type]
    numbers = sorted(versions)
    if a not in versions or b not in versions:
        a, b = (numbers[-2], numbers[-1]) if len(numbers) >= 2 else (numbers[0], numbers[0]) if numbers else (0, 0)
    rows = _diff_rows(versions[a].source, versions[b].source, f"{rs.name}@v{a}", f"{rs.name}@v{b}") if a and b else []
    return _page(request, "ruleset_diff.html", rs=rs, numbers=numbers, a=a, b=b, rows=rows)


handlers = [check_json, rulesets, ruleset, check_form, save_draft, simulate, publish, diff]
