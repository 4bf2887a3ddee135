//! Parsing request bodies into events (filled in by the ingest parser work).
