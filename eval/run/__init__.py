"""Running comparisons: inputs, the workbench, measurement, scoring, retention, provenance, and
the harness that ties them together (`eval.run.harness.run_comparison`); each module is
imported by its own name, so importing one does not load the rest."""
