//! Embedded storage.
