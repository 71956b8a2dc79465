"""Lightning modules: one base :class:`~sandwich.scenarios.base.SandwichModule`, one thin subclass per scenario."""
