"""Running a night: orchestration (the only place that computes), the loop over AOIs,
incremental planning, the Dask cluster and the atomic swap of outputs."""
