"""What notebooks import: the analyst API, analyses, threshold sweeps and review helpers.
``import pipeline`` exposes their public names lazily."""
