"""Computed styles shared between the documents a process renders (WeasyPrint 70).

WeasyPrint gives two elements one computed style when their parents share a style and the same
rules and style attributes match them (``StyleFor.__init__``'s ``computed_cache``); each value
of a style is computed on first use. That sharing ends with the document, so every invoice
computed the same ~70 styles of our templates again, property by property (~10 % of a render).
Here the sharing goes on across documents: a style is found by its parent's style, the
serialized declarations of its element's attributes and the (sheet, rule) pairs that match it —
the key WeasyPrint uses within a document, with the sheets themselves held (our stylesheets are
parsed once per process, ``pdf.stylesheet``/``pdf.page_sheet``) so no key outlives what it names.

A shared style must not change once computed: WeasyPrint changes an element's style only in
ways that give the same result again (``StyleFor.__call__`` zeroes a table part's margins) or on
a copy (a table's margins moved to its wrapper: ``build.wrap_table``); the pseudo-elements'
styles are computed per document, as before. ``install`` replaces
``StyleFor.__init__`` only on the WeasyPrint version this was written against; the test suite
renders documents with warm and cold caches and compares the bytes.
"""

from __future__ import annotations

from math import inf
from typing import Any

__all__ = ["clear", "install"]

_VERSION = "70.0"
_LIMIT = 2_000  # styles kept (~65 per template, language and tenant); past it the cache starts again

_cache: dict[tuple[Any, ...], Any] = {}
_tokens: dict[int, int] = {}  # id(style) -> its token, for the styles _cache holds (alive)


def clear() -> None:
    _cache.clear()
    _tokens.clear()


def install() -> bool:
    """Use the shared styles if WeasyPrint is the version this module was written against."""
    import weasyprint  # type: ignore[import-untyped, unused-ignore]
    from weasyprint import css  # type: ignore[import-untyped, unused-ignore]

    if weasyprint.__version__ != _VERSION:
        return False
    if css.StyleFor.__init__ is not _init:
        _original.append(css.StyleFor.__init__)
        css.StyleFor.__init__ = _init
    return True


_original: list[Any] = []  # WeasyPrint's own StyleFor.__init__, once replaced (the tests compare)


def _declarations_key(declarations: Any) -> tuple[str, ...]:
    return tuple(node.serialize() for node in declarations)


def _init(self: Any, html: Any, sheets: Any, presentational_hints: Any, font_config: Any,
          target_collector: Any) -> None:
    """``weasyprint.css.StyleFor.__init__`` (70.0) with its style sharing kept across documents."""
    from weasyprint.css import (  # type: ignore[import-untyped, unused-ignore]
        PROGRESS_LOGGER,
        declaration_precedence,
        find_style_attributes,
        preprocess_declarations,
    )

    cascaded_styles: dict[Any, Any] = {}
    computed_styles: dict[Any, Any] = {}
    self._cascaded_styles, self._computed_styles = cascaded_styles, computed_styles
    self.initial_page_sizes = {"box": None, "area": None}
    self._sheets = sheets
    self.font_config = font_config

    PROGRESS_LOGGER.info("Step 3 - Applying CSS")
    layer_order = inf
    elements_declarations: dict[Any, tuple[Any, ...]] = {}
    shared_declarations: dict[Any, tuple[Any, ...]] = {}
    for specificity, element, declarations, base_url in find_style_attributes(
            html.etree_element, presentational_hints, html.base_url):
        style = cascaded_styles.setdefault((element, None), {})
        elements_declarations[element] = tuple(declarations)
        shared_declarations[element] = shared_declarations.get(element, ()) + (
            (specificity, base_url, _declarations_key(declarations)),)
        for name, values, importance in preprocess_declarations(base_url, declarations):
            precedence = declaration_precedence("author", importance)
            weight = (precedence, layer_order, specificity)
            old_weight = style.get(name, (None, None))[1]
            if old_weight is None or old_weight <= weight:
                style[name] = values, weight

    if len(_cache) > _LIMIT:
        clear()
    # only documents styled by sheets parsed once (ours come as user sheets, pdf.stylesheet and
    # page_sheet); a <style> of the document (the ad-hoc receipts) is a new sheet every time
    shareable = all(origin != "author" for _, origin, _ in sheets)
    computed_cache: dict[Any, Any] = {}
    for element in html.wrapper_element.iter_subtree():
        etree_element = element.etree_element
        parent = element.parent.etree_element if element.parent else None
        parent_style = computed_styles[parent, None] if element.parent else None
        parent_id = id(parent_style) if element.parent else None
        element_declarations = elements_declarations.get(etree_element)
        selectors_keys = []
        shared_keys = []
        for sheet, origin, sheet_specificity in sheets:
            for selector in sheet.matcher.match(element):
                specificity, _order, pseudo_type, (declarations, layer) = selector
                layer_order = inf if layer is None else sheet.layers.index(layer)
                selectors_keys.append((sheet, specificity, id(declarations), layer_order))
                shared_keys.append((sheet, origin, sheet_specificity, specificity, id(declarations), layer_order))
                specificity = sheet_specificity or specificity
                style = cascaded_styles.setdefault((etree_element, pseudo_type), {})
                for name, values, importance in declarations:
                    precedence = declaration_precedence(origin, importance)
                    weight = (precedence, layer_order, specificity)
                    old_weight = style.get(name, (None, None))[1]
                    if old_weight is None or old_weight <= weight:
                        style[name] = values, weight

        # the parent's token (the root's: what its values depend on besides its rules)
        parent_token = _tokens.get(id(parent_style)) if element.parent else ("root", font_config, html.base_url)
        shared = None
        if parent_token is not None and shareable:
            shared = (parent_token, shared_declarations.get(etree_element, ()), tuple(shared_keys))
            if (found := _cache.get(shared)) is not None:
                computed_styles[etree_element, None] = found
                continue

        key = (parent_id, element_declarations, tuple(selectors_keys))
        if shared is None and key in computed_cache:
            computed_styles[etree_element, None] = computed_cache[key]
        else:
            self.set_computed_styles(
                etree_element, root=html.etree_element, parent=parent,
                base_url=html.base_url, target_collector=target_collector)
            computed = computed_cache[key] = computed_styles[etree_element, None]
            if shared is not None:
                _cache[shared] = computed
                _tokens[id(computed)] = len(_tokens) + 1

    for element, pseudo_type in cascaded_styles:
        if pseudo_type:
            self.set_computed_styles(
                element, pseudo_type=pseudo_type, root=html.etree_element, parent=element,
                base_url=html.base_url, target_collector=target_collector)

    self._cascaded_styles.clear()
