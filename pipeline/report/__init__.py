"""Report: render what a run computed (maps, exports, alerts). Computes nothing new."""
