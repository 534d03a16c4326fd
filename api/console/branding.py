"""White-label: the console wears the tenant's name, logo and colours, as its invoices do (the
same ``branding`` settings, read by ``store.documents.tenant_branding``). Colours are adjusted
only as far as needed for WCAG AA contrast (4.5:1 for text): a light brand colour becomes the
accent behind dark text, a brand colour too light for links on white is darkened for them, and
panels wear a light tint of the secondary colour."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Theme", "contrast", "theme_css", "theme_of"]


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255


def _luminance(hex_colour: str) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in _rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two hex colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _darker(hex_colour: str, step: float = 0.9) -> str:
    r, g, b = _rgb(hex_colour)
    return "#" + "".join(f"{round(c * step * 255):02x}" for c in (r, g, b))


def _tint(hex_colour: str, amount: float) -> str:
    """``amount`` of the colour on white: the brand's hue for panels, light enough for any text."""
    r, g, b = _rgb(hex_colour)
    return "#" + "".join(f"{round((c * amount + (1 - amount)) * 255):02x}" for c in (r, g, b))


def _readable_on_white(hex_colour: str) -> str:
    colour = hex_colour
    for _ in range(40):
        if contrast(colour, "#ffffff") >= 4.5:
            return colour
        colour = _darker(colour)
    return "#1f3a5f"


@dataclass(frozen=True)
class Theme:
    name: str
    primary: str  # header background
    on_primary: str  # text on it
    secondary: str  # light panels
    link: str  # links and buttons on white
    has_logo: bool


def theme_of(tenant: object | None) -> Theme:
    from store.documents import tenant_branding

    if tenant is None:
        return Theme("evbill", "#1f3a5f", "#ffffff", "#e8eef5", "#1f3a5f", False)
    b = tenant_branding(getattr(tenant, "branding", None))
    on = "#ffffff" if contrast(b.primary_color, "#ffffff") >= 4.5 else "#111111"
    # panels (navigation, table heads) carry a tint of the secondary colour: the invoices use it
    # for small boxes, a whole bar of it would shout; dark text stays readable on any tint
    secondary = _tint(b.secondary_color, 0.3)
    return Theme(getattr(tenant, "name", "") or "evbill", b.primary_color, on, secondary,
                 _readable_on_white(b.primary_color), b.logo is not None)


def theme_css(theme: Theme) -> str:
    return (":root{"
            f"--brand:{theme.primary};--on-brand:{theme.on_primary};"
            f"--brand-soft:{theme.secondary};--link:{theme.link};"
            "}\n")
