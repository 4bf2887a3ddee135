//! Default-pack evaluation throughput on one core: benign HTTP requests (parameter values
//! from the `norm` rows of the HttpParamsDataset, embedded here) and AI-agent vitals events
//! that carry no signature fields. Criterion reports elements/s = events/s per core.

use antibody_core::{AttrValue, Event, TenantId};
use antibody_rules::{RuleHit, RuleSet};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// Benign parameter values (HttpParamsDataset, payload_test.csv, `norm` rows).
const BENIGN_VALUES: &[&str] = &[
    "pardip",
    "4ntrometim13nt6",
    "calle perez galdos, 167",
    "nogueras",
    "passeig bosc, 157",
    "1764760587372326",
    "76150645z",
    "kaidanovsky@soybueno.lt",
    "ra0iot4248$6ica",
    "rec 64,",
    "dannunzio.sugiura@ilusionarium.sj",
    "m+ar8ca4",
    "coves de vinrom les",
    "valeika@italianmotorvillagesevilla.gd",
    "credenciales incorrectas",
    "shukuri@velaconsultores.nl",
    "calle la rambla de el saler, 25",
    "c/ l' or, 125",
    "espluga de francol l'",
    "o'kinghtons camarena",
];

fn http_events() -> Vec<Event> {
    BENIGN_VALUES
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let attrs = [
                ("src_ip", format!("10.0.{}.{}", i % 7, i)),
                ("method", "GET".to_owned()),
                ("path", format!("/shop/customers/{i}/edit")),
                (
                    "query",
                    format!("name={}&page={}&lang=es", v.replace(' ', "+"), i % 5),
                ),
                (
                    "user_agent",
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0".to_owned(),
                ),
                ("status", "200".to_owned()),
            ];
            event("http", i as i64 * 1_000, &attrs)
        })
        .collect()
}

fn vitals_events() -> Vec<Event> {
    (0..20)
        .map(|i| {
            let mut ev = event(
                "vitals",
                i * 1_000,
                &[
                    ("model", "gpt-4.1".into()),
                    ("tools", "search,browse".into()),
                ],
            );
            ev.metrics = vec![
                ("latency_ms".into(), 800.0 + i as f64),
                ("tokens".into(), 1500.0),
            ];
            ev
        })
        .collect()
}

fn event(kind: &str, ts: i64, attrs: &[(&str, String)]) -> Event {
    Event {
        tenant: TenantId::new("default"),
        ts,
        entity: "service:shop".into(),
        kind: kind.into(),
        metrics: vec![],
        attrs: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttrValue::Str(v.clone())))
            .collect(),
        id: None,
    }
}

fn bench(c: &mut Criterion) {
    let set = RuleSet::default_pack();
    let mut group = c.benchmark_group("default_pack");
    for (name, events) in [("http_benign", http_events()), ("vitals", vitals_events())] {
        let mut state = set.new_state();
        let mut out: Vec<RuleHit> = Vec::new();
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for ev in &events {
                    set.evaluate(&mut state, black_box(ev), &mut out);
                }
                out.clear();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
