"""The map's own script elements: popups and tooltips bound to features and flag markers, and
the page script (tiles-offline note, ``#flag-<id>`` anchors).

Templates are constants of the class; data (popup HTML, tooltips, flag ids) reaches them only
as values through ``tojson``, and their output is kept verbatim (:mod:`pipeline.report.verbatim`).
"""

from __future__ import annotations

from branca.element import MacroElement
from jinja2 import Template

from pipeline.report.verbatim import VerbatimMacro


class FeatureHtml(VerbatimMacro):
    """Binds each feature's pre-escaped ``_tip``/``_popup`` properties to its layer.

    Add it to a GeoJson element; Leaflet shows the strings as HTML, so they must be built with
    :func:`pipeline.report.markup.esc`.
    """

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "{{ this._parent.get_name() }}.eachLayer(function(l){var p=l.feature.properties;"
        "{% if this.tooltip %}if(p._tip){l.bindTooltip(p._tip,{sticky:true});}{% endif %}"
        "{% if this.popup %}if(p._popup){l.bindPopup(p._popup,{maxWidth:420});}{% endif %}"
        "});{% endmacro %}"
    )

    def __init__(self, *, tooltip: bool = True, popup: bool = True) -> None:
        super().__init__()
        self._name = "FeatureHtml"
        self.tooltip = tooltip
        self.popup = popup


class FlagBinding(VerbatimMacro):
    """Popup, tooltip and ``id="flag-<flag_id>"`` of one flag marker (add it to the marker);
    the marker is kept in ``window.asmFlags`` for the ``#flag-`` anchors."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "(function(m){m.bindPopup({{ this.popup|tojson }},{maxWidth:440});"
        "m.bindTooltip({{ this.tip|tojson }});window.asmFlags=window.asmFlags||{};"
        "window.asmFlags[{{ this.fid|tojson }}]=m;"
        "function tag(){var e=m.getElement&&m.getElement();if(e){e.id={{ ('flag-' ~ this.fid)|tojson }};"
        "e.setAttribute('data-flag-id',{{ this.fid|tojson }});}}"
        "m.on('add',tag);tag();})({{ this._parent.get_name() }});{% endmacro %}"
    )

    def __init__(self, *, popup: str, tip: str, fid: str) -> None:
        super().__init__()
        self._name = "FlagBinding"
        self.popup, self.tip, self.fid = popup, tip, fid


class PageScript(VerbatimMacro):
    """Shows the tiles-offline note when a tile fails, and opens the flag named by
    ``#flag-<flag_id>`` (add it to the map)."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "(function(){var note=document.getElementById('asm-tiles-note');var shown=false;"
        "function show(){if(!shown){shown=true;note.style.display='block';}}"
        "{{ this.tiles.get_name() }}.on('tileerror',show);if(navigator.onLine===false){show();}"
        "function go(){var h=/^#flag-([0-9a-f]+)$/.exec(location.hash);if(!h||!window.asmFlags)return;"
        "var m=window.asmFlags[h[1]];if(!m)return;{{ this._parent.get_name() }}.setView(m.getLatLng(),"
        "Math.max({{ this._parent.get_name() }}.getZoom(),13));m.openPopup();}"
        "window.addEventListener('hashchange',go);go();})();{% endmacro %}"
    )

    def __init__(self, *, tiles: MacroElement) -> None:
        super().__init__()
        self._name = "PageScript"
        self.tiles = tiles
