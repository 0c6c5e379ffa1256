"""anomalyd: the service (configuration, MQTT I/O, pipeline, scoring, state, metrics, CLI)."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anomalyd")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
