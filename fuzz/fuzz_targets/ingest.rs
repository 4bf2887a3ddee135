//! Request bodies, raw and as gzip, through both body formats: nothing may panic, and every
//! event that comes out must satisfy the limits it was parsed under.
#![no_main]

use antibody_core::ingest::{decode_body, parse_events, BodyFormat, Limits};
use antibody_core::TenantId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches the limit paths with small inputs.
    let limits = Limits {
        max_body_bytes: 64 << 10,
        max_line_bytes: 4 << 10,
        max_events: 64,
        max_fields: 8,
        max_depth: 4,
        max_string_bytes: 256,
        max_entity_bytes: 32,
        max_future_ms: 24 * 3600 * 1000,
    };
    let tenant = TenantId::new("fuzz");
    for encoding in [None, Some("gzip")] {
        let Ok(body) = decode_body(data, encoding, &limits) else {
            continue;
        };
        assert!(body.len() <= limits.max_body_bytes);
        let sniffed = BodyFormat::sniff(&body);
        for format in [BodyFormat::Json, BodyFormat::Ndjson, sniffed] {
            if let Ok(batch) = parse_events(&body, format, &tenant, 0, &limits) {
                assert!(batch.events.len() + batch.rejected.len() <= limits.max_events);
                for ev in &batch.events {
                    assert!(!ev.entity.is_empty() && ev.entity.len() <= limits.max_entity_bytes);
                    assert!(ev.metrics.len() + ev.attrs.len() <= limits.max_fields);
                    assert!(ev.metrics.iter().all(|(_, v)| v.is_finite()));
                }
            }
        }
    }
});
