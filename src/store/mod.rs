//! InfluxDB store.
