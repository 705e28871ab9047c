"""The bottom layer: settings, errors, domain records, periods, geometry, text and atomic
writes. Imports nothing else of ours."""
