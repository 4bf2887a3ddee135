//! Maps the benchmark's export (64 agent tasks, 512 spans, protobuf) N times, for instruction
//! counts that a busy machine does not blur:
//! `valgrind --tool=callgrind target/release/examples/otlp_ir 110` minus the same with 10,
//! divided by 100, is the cost of one export (see BENCHMARKS.md).

#[path = "../benches/data/otlp_export.rs"]
mod otlp_export;

use antibody_core::ingest::Limits;
use antibody_core::TenantId;
use antibody_formats::otlp::{map_traces, Encoding};
use otlp_export::{export, NOW};
use prost::Message as _;

/// The server runs on mimalloc; measure with the allocator it will have.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let pb = export().encode_to_vec();
    let tenant = TenantId::new("bench");
    let limits = Limits::default();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let mut total = 0;
    for _ in 0..n {
        total += map_traces(&pb, Encoding::Protobuf, &tenant, NOW, &limits)
            .unwrap()
            .events
            .len();
    }
    println!("{total}");
}
