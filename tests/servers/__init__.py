"""Loopback emulators of the remote services the scene sources use, for tests only.

* :mod:`.stac_api` - a STAC API (item search, query / CQL2 filter, paging, COG assets with
  HTTP range reads) serving the real gold-mine patches as dated Sentinel-2 L2A scenes.
* :mod:`.sentinelhub` - Sentinel Hub OAuth2 token, Catalog 1.0.0 search and Process API on the
  same scenes (:mod:`.sh_process` renders the GeoTIFFs).
* :mod:`.shapes` - validators of requests against the services' documented shapes.
* :mod:`.fixtures` - the ``stac_api`` / ``sentinelhub_api`` / ``gold_patches`` fixtures.

Nothing here reaches the internet: servers bind 127.0.0.1 on a free port and stop at teardown.
"""
