"""The private mosquitto broker for tests (the product's own runner, shared with the benchmarks)."""

from anomalyd.daemon.local_broker import (BINARY_ENV, BrokerError, MosquittoBroker, free_port,  # noqa: F401
                                          mosquitto_binary)
