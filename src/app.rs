//! Wiring of the pipeline.
