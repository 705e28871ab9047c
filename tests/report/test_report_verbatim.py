"""The map's elements render verbatim: rendered text (data included) is never compiled as a
template again, and a page holding an element that would do so is refused before it renders."""

from __future__ import annotations

import folium
import pytest

from pipeline.report import verbatim as vb
from pipeline.report.map_elements import FlagBinding


def _page() -> tuple[vb.Page, folium.Map]:
    fmap = vb.Map(tiles=None)
    fmap.default_js, fmap.default_css = [], []
    page = vb.Page()
    page.add_child(fmap)
    return page, fmap


def test_rendered_output_is_not_compiled_again() -> None:
    page, fmap = _page()
    marker = vb.CircleMarker(location=[0.0, 0.0])
    marker.add_child(FlagBinding(popup="{{ 7*7 }} {% raw %}", tip="{#", fid="abc"))
    marker.add_to(fmap)
    vb.check_tree(page)
    html = page.render()
    assert 'm.bindPopup("{{ 7*7 }} {% raw %}"' in html and 'm.bindTooltip("{#")' in html


def test_a_plain_folium_element_is_refused_with_the_fix() -> None:
    page, fmap = _page()
    folium.Marker(location=[0.0, 0.0], popup="{{ 7*7 }}").add_to(fmap)
    with pytest.raises(
        vb.TemplateSourceError, match=r"Wrap the class with pipeline\.report\.verbatim\.verbatim"
    ):
        vb.check_tree(page)


def test_an_element_made_from_a_string_is_refused() -> None:
    from branca.element import Element

    page, _ = _page()
    page.html.add_child(Element("<b>{{ 7*7 }}</b>"))
    with pytest.raises(vb.TemplateSourceError, match=r"Verbatim\(text\) instead"):
        vb.check_tree(page)
    page, _ = _page()
    page.html.add_child(vb.Verbatim("<b>{{ 7*7 }}</b>"))
    vb.check_tree(page)
    assert "<b>{{ 7*7 }}</b>" in page.render()


def test_a_helper_with_its_own_render_added_while_rendering_is_refused() -> None:
    page, fmap = _page()

    class Sneaky(folium.MacroElement):  # type: ignore[misc]
        def render(self, **kwargs: object) -> None:
            super().render(**kwargs)

    group = vb.FeatureGroup(name="g")
    group.add_to(fmap)
    vb.check_tree(page)
    group.add_child(Sneaky())  # e.g. added by a folium render step, after the check
    with pytest.raises(vb.TemplateSourceError):
        page.render()


def test_wrapping_keeps_the_folium_class_behaviour() -> None:
    assert issubclass(vb.GeoJson, folium.GeoJson) and issubclass(vb.GeoJson, vb.VerbatimMacro)
    assert vb.verbatim(vb.GeoJson) is vb.GeoJson
    mro = vb.GeoJson.__mro__
    assert mro.index(vb.VerbatimMacro) < mro.index(folium.MacroElement)
