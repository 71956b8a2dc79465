"""RD evaluation: Pareto fronts, Bjøntegaard-delta figures, and reports (JSON, PNG plots, HTML)."""
