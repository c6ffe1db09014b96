"""lblab's experiments: one module (or package) each, each exposing `EXPERIMENT`, an
instance of lblab.driver.Experiment. The catalogue is their entry points in pyproject.toml
(group `lblab.experiments`)."""
