//! OTLP export bodies, as protobuf and as JSON, traces and logs: nothing may panic, every
//! event must satisfy the limits it was mapped under, and planning the tasks' vitals must
//! not panic either.
#![no_main]

use antibody_core::ingest::Limits;
use antibody_core::TenantId;
use antibody_formats::otlp::{map_logs, map_traces, Encoding, TaskTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches the limit paths with small inputs.
    let limits = Limits {
        max_events: 64,
        max_string_bytes: 64,
        max_entity_bytes: 32,
        ..Limits::default()
    };
    let tenant = TenantId::new("fuzz");
    let now = 1_780_000_000_000;
    for enc in [Encoding::Protobuf, Encoding::Json] {
        for map in [map_traces, map_logs] {
            let Ok(out) = map(data, enc, &tenant, now, &limits) else {
                continue;
            };
            assert!(out.events.len() + out.rejected <= limits.max_events);
            for ev in &out.events {
                assert!(ev.entity.starts_with("agent:") && ev.entity.len() <= limits.max_entity_bytes);
                assert!(ev.metrics.iter().all(|(_, v)| v.is_finite()));
                assert!(ev.ts <= now + limits.max_future_ms);
            }
            let mut table = TaskTable::new();
            let plan = table.plan(&tenant, &out.tasks, now, &limits);
            assert!(plan.events.iter().all(|e| e.kind == "vitals"));
            table.apply(&tenant, &out.tasks, now, &limits);
        }
    }
});
