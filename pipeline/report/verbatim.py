"""folium elements that never compile their own output as a template a second time.

branca's ``MacroElement.render`` renders an element's ``header``/``html``/``script`` macros and
wraps each result in ``Element(text)``, whose constructor compiles ``text`` as Jinja source;
the page template then renders it again. Whatever data the first rendering placed in that text
(a registry name in a popup, the AOI name in the legend) thereby became template source:
``{{ 7*7 }}`` printed ``49``, ``{{ cycler.__init__.__globals__.os.environ }}`` printed the
webhook secret, ``{% raw %}`` failed the render every night.

Here the rendered text goes into the page as it is (:class:`Verbatim`), so data meets Jinja
only as a *value* of folium's own constant templates, which pass it through ``tojson``. Every
folium class the map uses is wrapped below, and :func:`check_tree` refuses a page that holds
an element which would still compile its output, so a new layer type cannot quietly reopen
the hole: wrap it with :func:`verbatim` first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import folium
from branca.element import Element, Figure, MacroElement

from pipeline.core.errors import PipelineError

_META = '<meta http-equiv="content-type" content="text/html; charset=UTF-8" />'
_PARTS = ("header", "html", "script")
_E = TypeVar("_E", bound=MacroElement)


class TemplateSourceError(PipelineError):
    """A page element would compile rendered text (which may hold data) as a template."""


class Verbatim(Element):
    """Text that goes into the page as it is: never compiled as a template."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "Verbatim"
        self.text = text

    def render(self, **kwargs: Any) -> str:
        return self.text


class VerbatimMacro(MacroElement):
    """A macro element whose rendered macros go into the page as :class:`Verbatim` text.

    Placed before :class:`MacroElement` in a folium class's MRO (see :func:`verbatim`), it
    replaces branca's render at the end of folium's ``super().render()`` chain, so folium's
    own render steps (adding a layer to its parent, the style map of a GeoJson) still run.
    """

    def render(self, **kwargs: Any) -> str:
        # like branca's, the output goes into the page's header/html/script, not the return value
        _render_macros(self, kwargs)
        return ""


def _render_macros(element: MacroElement, kwargs: dict[str, Any]) -> None:
    figure = element.get_root()
    if not isinstance(figure, Figure):
        raise TemplateSourceError(
            f"{type(element).__name__} is not on a page: add it to the map before rendering."
        )
    macros = element._template.module.__dict__
    for part in _PARTS:
        macro = macros.get(part)
        if macro is not None:
            getattr(figure, part).add_child(Verbatim(str(macro(element, kwargs))), name=element.get_name())
    for child in list(element._children.values()):
        if isinstance(child, MacroElement) and not isinstance(child, VerbatimMacro):
            # folium adds small helpers while rendering (a layer's ``addTo`` call); they
            # render the same way, or are refused when they bring a render of their own
            if type(child).render is not MacroElement.render:
                raise TemplateSourceError(_refusal(child))
            _render_macros(child, kwargs)
        else:
            child.render(**kwargs)


def _refusal(element: Element) -> str:
    fix = (
        "Wrap the class with pipeline.report.verbatim.verbatim() and use the wrapped class on the map."
        if isinstance(element, MacroElement)
        else "Put fixed text on the page with pipeline.report.verbatim.Verbatim(text) instead."
    )
    return (
        f"{type(element).__module__}.{type(element).__name__} would compile its rendered output "
        f"(data included) as a Jinja template. {fix}"
    )


def verbatim(cls: type[_E]) -> type[_E]:
    """``cls`` (a folium element class) with its output kept verbatim."""
    if issubclass(cls, VerbatimMacro):
        return cls
    return type(cls.__name__, (cls, VerbatimMacro), {"__module__": __name__, "__doc__": cls.__doc__})


Map = verbatim(folium.Map)
TileLayer = verbatim(folium.TileLayer)
FeatureGroup = verbatim(folium.FeatureGroup)
GeoJson = verbatim(folium.GeoJson)
CircleMarker = verbatim(folium.CircleMarker)
LayerControl = verbatim(folium.LayerControl)
FitBounds = verbatim(folium.FitBounds)
ImageOverlay = verbatim(folium.raster_layers.ImageOverlay)


class Page(Figure):
    """The page a map is rendered into; its only element of its own is the charset tag."""

    def __init__(self) -> None:
        super().__init__()
        self.header.add_child(Verbatim(_META), name="meta_http")


def _walk(element: Element) -> Iterator[Element]:
    yield element
    if isinstance(element, Figure):
        for part in _PARTS:
            yield from _walk(getattr(element, part))
    for child in element._children.values():
        yield from _walk(child)


def stable_ids(page: Page) -> None:
    """Number the page's elements in tree order instead of branca's random ids, so the same
    content renders to the same bytes (a night with nothing new rewrites nothing)."""
    for i, element in enumerate(_walk(page)):
        element._id = f"{i:08x}"


def check_tree(page: Page) -> None:
    """Raise :class:`TemplateSourceError` when any element on ``page`` would compile rendered
    text as a template: a folium element not wrapped by :func:`verbatim`, an ``Element`` made
    from a string, or a class with Leaflet ``include`` statements."""
    for element in _walk(page):
        kind = type(element)
        if isinstance(element, MacroElement):
            safe = isinstance(element, VerbatimMacro) and not getattr(element, "includes", None)
        else:
            plain = kind is Element and element._template_str is None and element._template_name is None
            safe = plain or kind in (Verbatim, Page)
        if not safe:
            raise TemplateSourceError(_refusal(element))
