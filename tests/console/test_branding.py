"""The console wears the tenant's colours, adjusted only as far as WCAG AA contrast needs."""

from __future__ import annotations

from types import SimpleNamespace

from api.console.branding import contrast, theme_css, theme_of


def test_contrast_ratios_match_wcag() -> None:
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#777777", "#ffffff"), 2) == 4.48  # the classic just-too-light grey
    assert contrast("#1f3a5f", "#1f3a5f") == 1.0


def test_a_dark_brand_colour_is_kept() -> None:
    th = theme_of(SimpleNamespace(name="Stadtwerke", branding={"primary_color": "#0b5d3b"}))
    assert (th.primary, th.on_primary, th.link) == ("#0b5d3b", "#ffffff", "#0b5d3b")
    assert "--brand:#0b5d3b" in theme_css(th)


def test_a_light_brand_colour_gets_dark_text_and_darker_links() -> None:
    th = theme_of(SimpleNamespace(name="Gelb", branding={"primary_color": "#ffd700", "secondary_color": "#000000"}))
    assert th.primary == "#ffd700" and th.on_primary == "#111111"
    assert contrast(th.on_primary, th.primary) >= 4.5
    assert th.link != "#ffd700" and contrast(th.link, "#ffffff") >= 4.5
    # panels get a light tint of the secondary colour, black text reads on it
    assert th.secondary == "#b2b2b2" and contrast(th.secondary, "#111111") >= 7
    orange = theme_of(SimpleNamespace(name="SW", branding={"primary_color": "#0b5394", "secondary_color": "#e69138"}))
    assert orange.secondary == "#f7dec3" and contrast(orange.secondary, "#111111") >= 7


def test_unusable_branding_falls_back_to_the_default() -> None:
    th = theme_of(SimpleNamespace(name="X", branding={"primary_color": "red; background:url(x)", "logo": "%%%"}))
    assert th.primary == "#1f3a5f" and not th.has_logo
    assert theme_of(None).name == "evbill"
