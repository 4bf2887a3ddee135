//! The embedded durable segment log.
