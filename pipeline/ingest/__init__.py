"""Ingest: the only package that touches disk, network or credentials.

It returns lazy (dask-backed) ``xarray`` objects and validated ``GeoDataFrame``s.
"""
