//! The per-request cost fair ingest adds to `POST /v1/events`: admitting a body for a tenant
//! and key, reserving its events and releasing both, with 100 tenants' bodies in flight.

use antibody_core::TenantId;
use antibody_server::fair::{Budgets, Shares};
use criterion::{criterion_group, criterion_main, Criterion};

fn fair(c: &mut Criterion) {
    let budgets = Budgets::new(Shares {
        bodies_per_tenant: 16,
        bodies_per_key: 8,
        events_per_tenant: 1_000_000,
    });
    let tenants: Vec<TenantId> = (0..100).map(|i| TenantId::new(&format!("t-{i}"))).collect();
    // Other tenants' requests in flight, as on a busy server.
    let _others: Vec<_> = tenants[1..]
        .iter()
        .map(|t| budgets.admit(t, &format!("k-{t}")).unwrap())
        .collect();
    c.bench_function("fair_admit_reserve_release", |b| {
        b.iter(|| {
            let mut permit = budgets.admit(&tenants[0], "k-0").unwrap();
            permit.reserve_events(1_000).unwrap();
            drop(permit);
        })
    });
}

criterion_group!(benches, fair);
criterion_main!(benches);
