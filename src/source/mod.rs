//! MQTT source.
