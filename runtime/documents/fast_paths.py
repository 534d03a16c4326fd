"""Eight of WeasyPrint 70's functions, the same results for less work.

- ``draw_first_line`` (``weasyprint.draw.text``) walks every glyph of every line it draws through
  cffi struct fields (``glyph_info.geometry.width`` is three attribute look-ups through cffi):
  ~6 % of a render. Here the glyph array and the cluster offsets are read out in one go
  (``ffi.unpack`` / ``struct``) and the loop runs over plain ints; the text operators it writes are
  those of WeasyPrint's loop, character for character (anything unusual — an empty or missing
  glyph, a raised glyph, a colour or bitmap font, ellipses — goes to WeasyPrint's own function).
- ``get_font_description`` (``weasyprint.text.line_break``) builds a new Pango font description
  for every text layout (~400 per invoice): here one per distinct font (family, style, stretch,
  weight, size, variant, variations), kept; Pango copies the description into each layout
  (``pango_layout_set_font_description``), so sharing one changes nothing.
- ``Layout.setup`` (``weasyprint.text.line_break``) creates a Pango context for every text layout
  (~375 per invoice: each line is laid out, then laid out again to be drawn), sets its options
  and its language, and makes a layout in it. Here the contexts are kept, one per font map,
  direction and language; a context is only read once its layouts exist (Pango layouts of one
  context are independent; nothing in WeasyPrint changes a context after ``setup``).
- ``Layout.deactivate`` and ``Layout.reactivate`` (``weasyprint.text.line_break``): WeasyPrint
  drops a line's Pango layout once the line is broken and, to draw the line, makes a new one and
  shapes the same text again. Here a laid-out layout of one line (a line that fits the width it
  was broken at is shaped as without one), without justification spacing and not drawn before is
  parked with the style it was made for, and drawing takes it back for that same style (its text
  and justification cannot change meanwhile: ``set_text`` needs the layout, and the spacing is
  set once, by ``Layout.__init__``). The parked layouts
  are bounded (``_PARKED_LIMIT``, oldest out first); one that was let go is made again as before.
  Drawing asks Pango for single-paragraph mode only when the text has a paragraph separator (the
  mode changes nothing else, and setting it would throw the parked layout's lines away).
- ``strut`` (``weasyprint.text.line_break``, imported by name into the layout and CSS modules)
  gives a style's line height and baseline, cached under a string made of 16 of its values on
  every call (~350 per invoice). Here the result is kept by the style itself (its identity, the
  style held so the identity is not reused); the styles are shared across documents
  (``runtime.documents.styles``) and their font values do not change once computed.
- ``layout_box_backgrounds`` (``weasyprint.layout.background``) resolves every box's corner radii
  and looks up a dozen style values for its background and border image (~550 boxes per
  invoice); almost every box has none. A style for which WeasyPrint's function left square
  corners, no border or mask image and no background is remembered (by identity, held), and the
  next box of that style gets the same: radii ``(0, 0)``, its children done, ``background = None``.
- ``resolve_percentages`` (``weasyprint.layout.percent``, imported by name into the layout
  modules) sets a box's used margins, paddings, widths and heights from its style through one call
  of ``resolve_one_percentage`` and one of ``percentage`` per property (15 per box, ~600 boxes per
  invoice: ~5 % of a render). Here the lengths in px or % are resolved inline by the same
  arithmetic; anything else (``calc()``, keywords) goes through WeasyPrint's ``percentage``.

``install`` replaces them only on the WeasyPrint version this was written against (``_VERSION``);
``tests/runtime/documents/test_fast_paths.py`` renders documents with WeasyPrint's functions and
with these and compares the bytes.
"""

from __future__ import annotations

import struct
from math import inf
from typing import Any

__all__ = ["install"]

_VERSION = "70.0"
_original: dict[str, Any] = {}  # WeasyPrint's own functions, once replaced (the tests compare)
_descriptions: dict[tuple[Any, ...], Any] = {}
_contexts: dict[tuple[Any, ...], Any] = {}
_weasyprint: list[Any] = []  # what _resolve_percentages uses of WeasyPrint, set by install()
_struts: dict[int, tuple[Any, Any]] = {}  # id(style) -> (style, its strut)
_plain: dict[int, Any] = {}  # id(style) -> style, for styles without a background, border image or radius
_parked: dict[Any, tuple[Any, Any, Any]] = {}  # Layout -> (Pango layout, style, language)
_DESCRIPTION_LIMIT = 512
_CONTEXT_LIMIT = 64
_STRUT_LIMIT = 1024  # ~70 styles of our templates, ~15 more per document (anonymous boxes)
_PLAIN_LIMIT = 1024
_PARKED_LIMIT = 2048  # ~5 MB of Pango layouts; an invoice of 20 sessions parks ~200, ~50 of them never drawn
_PARAGRAPH_SEPARATORS = ("\n", "\r", "\x85", "\u2029")  # what Pango's paragraph boundaries are made of


def install() -> bool:
    """Use these functions if WeasyPrint is the version they were written against."""
    import weasyprint  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.draw import text as draw_text  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.text import ffi as text_ffi  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.text import line_break  # type: ignore[import-untyped, unused-ignore]

    if weasyprint.__version__ != _VERSION or text_ffi.ffi.sizeof("PangoGlyphInfo") != _GLYPH.size:
        return False
    from weasyprint.css.functions import check_math  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.css.properties import Dimension  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.formatting_structure import boxes  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.layout import background, percent  # type: ignore[import-untyped, unused-ignore]

    _weasyprint[:] = [Dimension, boxes, percent.adjust_box_sizing, percent.percentage, check_math]
    if not _original:
        _original["draw_first_line"] = draw_text.draw_first_line
        _original["get_font_description"] = line_break.get_font_description
        _original["resolve_percentages"] = percent.resolve_percentages
        _original["strut"] = line_break.strut
        _original["layout_box_backgrounds"] = background.layout_box_backgrounds
        _original["setup"] = line_break.Layout.setup
        _original["deactivate"] = line_break.Layout.deactivate
        _original["reactivate"] = line_break.Layout.reactivate
    line_break.Layout.setup = _setup
    line_break.Layout.deactivate = _deactivate
    line_break.Layout.drawn = False  # reactivated once: its layout is not parked again (it may be ellipsized)
    line_break.Layout.reactivate = _reactivate
    draw_text.draw_first_line = _draw_first_line
    line_break.get_font_description = _font_description
    _replace_everywhere(_original["resolve_percentages"], _resolve_percentages)
    _replace_everywhere(_original["strut"], _strut, "strut")
    _replace_everywhere(_original["layout_box_backgrounds"], _layout_box_backgrounds, "layout_box_backgrounds")
    return True


def _replace_everywhere(old: Any, new: Any, attribute: str = "resolve_percentages") -> None:
    """``new`` for ``old`` in every WeasyPrint module that imported it by name (``attribute``)."""
    import sys

    for name, module in list(sys.modules.items()):
        if name.startswith("weasyprint.") and getattr(module, attribute, None) is old:
            setattr(module, attribute, new)


def uninstall() -> None:
    """WeasyPrint's own functions again (the tests compare the two)."""
    from weasyprint.draw import text as draw_text  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.text import line_break  # type: ignore[import-untyped, unused-ignore]

    if _original:
        draw_text.draw_first_line = _original["draw_first_line"]
        line_break.get_font_description = _original["get_font_description"]
        _replace_everywhere(_resolve_percentages, _original["resolve_percentages"])
        _replace_everywhere(_strut, _original["strut"], "strut")
        _replace_everywhere(_layout_box_backgrounds, _original["layout_box_backgrounds"], "layout_box_backgrounds")
        _struts.clear()
        _plain.clear()
        line_break.Layout.setup = _original["setup"]
        line_break.Layout.deactivate = _original["deactivate"]
        line_break.Layout.reactivate = _original["reactivate"]
        if "drawn" in vars(line_break.Layout):
            del line_break.Layout.drawn
        _parked.clear()


def _font_description(style: Any) -> Any:
    """``weasyprint.text.fonts.get_font_description`` (70.0), one description per distinct font."""
    key = (tuple(style["font_family"]), style["font_style"], style["font_stretch"], style["font_weight"],
           style["font_size"], style["font_variant_caps"], _variations_key(style["font_variation_settings"]))
    found = _descriptions.get(key)
    if found is None:
        found = _keep(_descriptions, _DESCRIPTION_LIMIT, key, _original["get_font_description"](style))
    return found


def _keep(cache: dict[Any, Any], limit: int, key: Any, value: Any) -> Any:
    """``cache[key] = value``, the cache started again once it holds ``limit`` entries."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


def _variations_key(settings: Any) -> Any:
    return settings if settings == "normal" else tuple(tuple(pair) for pair in settings)


# PangoGlyphInfo: glyph (guint32), geometry (width, x_offset, y_offset: gint32), attr (a guint bitfield)
_GLYPH = struct.Struct("=IiiiI")


def _draw_first_line(stream: Any, textbox: Any, text_overflow: Any, block_ellipsis: Any, matrix: Any) -> Any:
    """``weasyprint.draw.text.draw_first_line`` (70.0) with the glyph loop over plain ints."""
    from weasyprint.text.ffi import FROM_UNITS, ffi, pango  # type: ignore[import-untyped, unused-ignore]

    if text_overflow == "ellipsis" or block_ellipsis != "none":
        return _original["draw_first_line"](stream, textbox, text_overflow, block_ellipsis, matrix)
    # Don’t draw lines with only invisible characters.
    if not textbox.text.strip():
        return []
    font_size_style = textbox.style["font_size"]
    if font_size_style < 1e-6:  # default float precision used by pydyf
        return []

    layout = textbox.pango_layout
    text = layout.text
    if any(separator in text for separator in _PARAGRAPH_SEPARATORS):
        pango.pango_layout_set_single_paragraph_mode(layout.layout, True)
    first_line, _index = layout.get_first_line()

    # Read every run's glyphs and font first: a run this loop does not handle sends the whole line,
    # before anything is written, to WeasyPrint's function (``add_font`` only registers the font).
    runs = []
    run = first_line.runs[0]
    while run != ffi.NULL:
        glyph_item = run.data
        run = run.next
        glyph_string = glyph_item.glyphs
        num_glyphs = glyph_string.num_glyphs
        glyphs = list(_GLYPH.iter_unpack(ffi.buffer(glyph_string.glyphs, num_glyphs * _GLYPH.size)))
        for glyph_id, _width, _x_offset, y_offset, _attr in glyphs:
            if glyph_id == pango.PANGO_GLYPH_EMPTY or glyph_id & pango.PANGO_GLYPH_UNKNOWN_FLAG or y_offset:
                return _original["draw_first_line"](stream, textbox, text_overflow, block_ellipsis, matrix)
        pango_font = glyph_item.item.analysis.font
        font, font_size = stream.add_font(pango_font)
        if font.svg or font.png or font.colr or font.bitmap:
            return _original["draw_first_line"](stream, textbox, text_overflow, block_ellipsis, matrix)
        runs.append((glyph_item.item, pango_font, font, font_size, glyphs, num_glyphs, glyph_string.log_clusters))

    stream.set_text_matrix(*matrix.values)
    previous_pango_font = None
    string = ""
    for item, pango_font, font, font_size, glyphs, num_glyphs, clusters in runs:
        utf8_text = None
        if pango_font != previous_pango_font:
            previous_pango_font = pango_font
            # Workaround for https://gitlab.gnome.org/GNOME/pango/-/issues/530.
            size = font_size_style if pango.pango_version() < 14802 else font_size
            if string:
                stream.show_text(string)
            string = ""
            stream.set_font_size(font.hash, size)
        to_unicode, widths = font.to_unicode, font.widths
        parts = ["<"]
        for i, (glyph_id, width, x_offset, _y_offset, _attr) in enumerate(glyphs):
            # Create mapping between glyphs and Unicode codepoints.
            if glyph_id not in to_unicode:
                offset = item.offset
                t1 = clusters[i]
                if item.analysis.level % 2:  # rtl
                    t2 = item.length if i == 0 else clusters[i - 1]
                else:
                    t2 = item.length if i == num_glyphs - 1 else clusters[i + 1]
                utf8_text = utf8_text or layout.text.encode()
                to_unicode[glyph_id] = utf8_text[offset + t1:offset + t2].decode()

            offset = x_offset / size
            if offset:
                parts.append(f">{-offset}<")
            parts.append(f"{glyph_id:04x}")

            # Get glyph logical widths.
            if glyph_id in widths:
                logical_width = widths[glyph_id]
            else:
                pango.pango_font_get_glyph_extents(pango_font, glyph_id, stream.ink_rect, stream.logical_rect)
                logical_width = widths[glyph_id] = round(stream.logical_rect.width * 1000 * FROM_UNITS / size)

            # Set kerning, word spacing, letter spacing.
            kerning = logical_width + offset - width * 1000 * FROM_UNITS / size
            if kerning:
                parts.append(f">{int(kerning)}<")
        string += "".join(parts)
        # Close the last glyphs list, remove if empty.
        if string[-1] == "<":
            string = string[:-1]
        else:
            string += ">"

    stream.show_text(string)
    return []


def _strut(style: Any) -> Any:
    """``weasyprint.text.line_break.strut`` (70.0), kept per style."""
    found = _struts.get(id(style))
    if found is not None and found[0] is style:
        return found[1]
    result = _original["strut"](style)
    _keep(_struts, _STRUT_LIMIT, id(style), (style, result))
    return result


_RADII = ("border_top_left_radius", "border_top_right_radius", "border_bottom_right_radius",
          "border_bottom_left_radius")


def _layout_box_backgrounds(page: Any, box: Any, get_image_from_uri: Any, layout_children: bool = True,
                            style: Any = None) -> None:
    """``weasyprint.layout.background.layout_box_backgrounds`` (70.0), at once for a plain style."""
    own = box.style
    if style is None and box is not page and _plain.get(id(own)) is own:
        for name in _RADII:
            setattr(box, name, (0, 0))
        if layout_children:
            for child in box.all_children():
                _layout_box_backgrounds(page, child, get_image_from_uri)
        box.background = None
        return
    _original["layout_box_backgrounds"](page, box, get_image_from_uri, layout_children, style)
    if (style is None and box is not page and box.background is None
            and own["border_image_source"][0] == "none" and own["mask_border_source"][0] == "none"
            and all((0, "px") in own[name] for name in _RADII)):  # WeasyPrint's shortcut to (0, 0)
        _keep(_plain, _PLAIN_LIMIT, id(own), own)


def _deactivate(self: Any) -> None:
    """``Layout.deactivate`` (70.0), a broken line's Pango layout parked for drawing it."""
    from weasyprint.text.ffi import ffi, pango  # type: ignore[import-untyped, unused-ignore]

    layout = self.layout
    if (not self.drawn and not self.justification_spacing
            and pango.pango_layout_get_line_readonly(layout, 1) == ffi.NULL):
        if len(_parked) >= _PARKED_LIMIT:
            try:  # the oldest out; another thread rendering may have taken it or changed the dict
                del _parked[next(iter(_parked))]
            except (KeyError, RuntimeError, StopIteration):
                pass
        _parked[self] = (layout, self.style, self.language)
    del self.layout, self.language, self.style


def _reactivate(self: Any, style: Any) -> None:
    """``Layout.reactivate`` (70.0): the parked Pango layout if it was made for this style."""
    self.drawn = True
    parked = _parked.pop(self, None)
    if parked is not None and parked[1] is style:
        self.layout, self.style, self.language = parked
        return
    self.setup(style)
    self.set_text(self.text, justify=True)


_WIDTHS = ("margin_left", "margin_right", "padding_left", "padding_right", "width", "min_width", "max_width")
_HEIGHTS = ("margin_top", "margin_bottom", "padding_top", "padding_bottom")
_BORDERS = ("border_top_width", "border_right_width", "border_bottom_width", "border_left_width")


def _resolve_percentages(box: Any, containing_block: Any) -> None:
    """``weasyprint.layout.percent.resolve_percentages`` (70.0), px and % lengths resolved inline."""
    Dimension, boxes, adjust_box_sizing, percentage, check_math = _weasyprint

    if isinstance(containing_block, boxes.Box):
        cb_width = containing_block.width
        cb_height = containing_block.height
    else:
        cb_width, cb_height = containing_block
    maybe_height = cb_height if isinstance(box, boxes.PageBox) else cb_width
    style = box.style
    # WeasyPrint's order: margins, paddings (left, right, top, bottom), width, min and max width
    for names, refer_to in ((_WIDTHS, cb_width), (_HEIGHTS, maybe_height)):
        for name in names:
            value = style[name]
            if type(value) is Dimension and value.unit == "px":
                used = value.value
            elif type(value) is Dimension and value.unit == "%":
                used = refer_to * value.value / 100
            else:
                used = percentage(value, style, refer_to)
                if used == "auto" and name == "min_width":
                    used = 0
            setattr(box, name, used)

    if cb_height == "auto":
        # Special handling when the height of the containing block depends on its content.
        height = style["height"]
        if height == "auto" or check_math(height) or height.unit == "%":
            box.height = "auto"
        else:
            assert height.unit.lower() == "px"
            box.height = height.value
        refer_min, refer_max = 0, inf
    else:
        _resolve(box, style, "height", cb_height, percentage)
        refer_min = refer_max = cb_height
    _resolve(box, style, "min_height", refer_min, percentage)
    _resolve(box, style, "max_height", refer_max, percentage)

    collapse = style["border_collapse"] == "collapse"
    # Used value == computed value
    for prop in _BORDERS:
        # border-{side}-width would have been resolved during border conflict resolution for
        # collapsed-borders
        if not (collapse and hasattr(box, prop)):
            setattr(box, prop, style[prop])

    # Shrink *content* widths and heights according to box-sizing
    adjust_box_sizing(box, "width")
    adjust_box_sizing(box, "height")


def _resolve(box: Any, style: Any, name: str, refer_to: Any, percentage: Any) -> None:
    used = percentage(style[name], style, refer_to)
    setattr(box, name, 0 if used == "auto" and name == "min_height" else used)


def _setup(self: Any, style: Any) -> None:
    """``weasyprint.text.line_break.Layout.setup`` (70.0) with the Pango contexts kept."""
    from weasyprint.text.constants import LST_TO_ISO, PANGO_DIRECTION  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.text.ffi import FROM_UNITS, ffi, gobject, pango  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.text.fonts import font_features  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.text.line_break import get_font_description  # type: ignore[import-untyped, unused-ignore]

    self.style = style
    self.first_line_direction = 0

    font_map = style.font_config.font_map
    if style["font_language_override"] != "normal":
        lang = LST_TO_ISO.get(style["font_language_override"].lower(), style["font_language_override"])
    else:
        lang = style["lang"] or None
    direction = style["direction"]
    key = (font_map, direction, lang)
    found = _contexts.get(key)
    if found is None:
        pango_context = ffi.gc(pango.pango_font_map_create_context(font_map), gobject.g_object_unref)
        pango.pango_context_set_round_glyph_positions(pango_context, False)
        pango.pango_context_set_base_dir(pango_context, PANGO_DIRECTION[direction])
        if lang:
            lang_p = ffi.new("char[]", lang.encode().replace(b"\x00", b""))
            language = pango.pango_language_from_string(lang_p)
            pango.pango_context_set_language(pango_context, language)
        else:
            language = pango.pango_language_get_default()
        found = _keep(_contexts, _CONTEXT_LIMIT, key, (pango_context, language))
    pango_context, self.language = found

    assert not isinstance(style["font_family"], str), "font_family should be a list"
    font_description = get_font_description(style)
    self.layout = ffi.gc(pango.pango_layout_new(pango_context), gobject.g_object_unref)
    pango.pango_layout_set_auto_dir(self.layout, False)
    pango.pango_layout_set_font_description(self.layout, font_description)

    text_decoration = style["text_decoration_line"]
    if text_decoration != "none":
        metrics = ffi.gc(
            pango.pango_context_get_metrics(pango_context, font_description, self.language),
            pango.pango_font_metrics_unref)
        self.ascent = FROM_UNITS * (pango.pango_font_metrics_get_ascent(metrics))
        self.underline_position = FROM_UNITS * (pango.pango_font_metrics_get_underline_position(metrics))
        self.strikethrough_position = FROM_UNITS * (pango.pango_font_metrics_get_strikethrough_position(metrics))
        self.underline_thickness = FROM_UNITS * (pango.pango_font_metrics_get_underline_thickness(metrics))
        self.strikethrough_thickness = FROM_UNITS * (pango.pango_font_metrics_get_strikethrough_thickness(metrics))
    else:
        self.ascent = None
        self.underline_position = None
        self.strikethrough_position = None

    features = font_features(
        style["font_kerning"], style["font_variant_ligatures"], style["font_variant_position"],
        style["font_variant_caps"], style["font_variant_numeric"], style["font_variant_alternates"],
        style["font_variant_east_asian"], style["font_feature_settings"])
    if features:
        features = ",".join(f"{key} {value}" for key, value in features.items()).encode()
        # In the meantime, keep a cache to avoid leaking too many of them.
        attr = style.font_config.font_features.setdefault(features, pango.pango_attr_font_features_new(features))
        attr_list = pango.pango_attr_list_new()
        pango.pango_attr_list_insert(attr_list, attr)
        pango.pango_layout_set_attributes(self.layout, attr_list)
