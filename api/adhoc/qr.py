"""QR codes of the ad-hoc pages (segno, offline) and the printable sheet per site: one code per
EVSE with its id and the site's name, as a PDF to print and stick on the chargers."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["qr_sheet_pdf", "qr_svg"]


def qr_svg(url: str, scale: int = 4) -> bytes:
    import segno

    out = io.BytesIO()
    # error level M survives a scratched sticker; the title names the target for screen readers
    segno.make(url, error="m").save(out, kind="svg", scale=scale, xmldecl=False, svgns=True, title=url)
    return out.getvalue()


def qr_sheet_pdf(tenant: Any, location: Any, evses: list[Any], base_url: str, language: str) -> bytes:
    import base64

    from weasyprint import HTML  # type: ignore[import-untyped, unused-ignore]

    from api.adhoc.i18n import Words
    from api.adhoc.pages import environment
    from api.console.branding import theme_of
    from runtime.documents.pdf import RENDER_LOCK, font_config

    w = Words(language)
    codes = [{"evse": e, "url": f"{base_url}/charge/{e.id}",
              "svg": "data:image/svg+xml;base64," + base64.b64encode(qr_svg(f"{base_url}/charge/{e.id}", 8)).decode()}
             for e in evses]
    html = environment().get_template("qr_sheet.html").render(w=w, lang=w.lang, tenant=tenant, location=location,
                                                               codes=codes, theme=theme_of(tenant))
    with RENDER_LOCK:
        return bytes(HTML(string=html).write_pdf(font_config=font_config()))
