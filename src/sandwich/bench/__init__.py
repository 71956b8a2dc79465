"""``sandwich bench ...``: benchmarks that print figures and side-by-side ratios and write JSON."""
