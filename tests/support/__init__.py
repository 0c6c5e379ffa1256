"""Test helpers shared by the whole project: a private mosquitto, an MQTT test client,
and ``wait_until`` for condition polling instead of sleeps."""

from .mosquitto import MosquittoBroker, free_port, mosquitto_binary
from .mqtt import MqttTestClient, Received
from .wait import wait_until

__all__ = ["MosquittoBroker", "MqttTestClient", "Received", "free_port", "mosquitto_binary", "wait_until"]
