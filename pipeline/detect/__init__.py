"""Detect: pure functions on xarray / numpy / GeoDataFrames. No I/O, no ``.compute()``."""
