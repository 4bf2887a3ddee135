//! The engine in-process: parsed events → baselines + default rule pack + correlation, one
//! partition on one core. `cargo bench -p antibody-detect --bench engine`

use antibody_core::rng::SplitMix64;
use antibody_core::{AttrValue, Event, TenantId};
use antibody_detect::{EngineConfig, Outputs, Partition};
use antibody_rules::RuleSet;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;

const EVENTS: usize = 100_000;
const ENTITIES: u64 = 10_000;

const QUERIES: [&str; 6] = [
    "q=shoes&page=2",
    "id=40184",
    "name=nuda+drudes",
    "sort=price&dir=asc",
    "c/ del ferrocarril, 152,",
    "lang=en-US",
];

/// 70 % agent vitals (4 metrics, 10,000 agents), 20 % benign HTTP, 10 % SSH auth.
fn events() -> Vec<Event> {
    let tenant = TenantId::new("bench");
    let mut rng = SplitMix64::new(42);
    (0..EVENTS)
        .map(|i| {
            let ts = 1_700_000_000_000 + i as i64;
            let r = rng.next_u64() % 10;
            let e = rng.next_u64() % ENTITIES;
            let (entity, kind, metrics, attrs) = if r < 7 {
                let m = vec![
                    ("tokens".to_string(), 1500.0 + 100.0 * rng.unit()),
                    ("latency_ms".to_string(), 800.0 + 50.0 * rng.unit()),
                    ("tool_calls".to_string(), 3.0),
                    ("cost_usd".to_string(), 0.02 + 0.001 * rng.unit()),
                ];
                (
                    format!("agent:{e}"),
                    "vitals",
                    m,
                    vec![("prompt_hash".to_string(), AttrValue::Str("p1".into()))],
                )
            } else if r < 9 {
                let q = QUERIES[(rng.next_u64() % QUERIES.len() as u64) as usize];
                let a = vec![
                    (
                        "src_ip".to_string(),
                        AttrValue::Str(format!("10.0.{}.{}", e % 200, e % 250)),
                    ),
                    ("method".to_string(), AttrValue::Str("GET".into())),
                    ("path".to_string(), AttrValue::Str("/search".into())),
                    ("query".to_string(), AttrValue::Str(q.into())),
                ];
                (
                    format!("host:web-{}", e % 20),
                    "http",
                    vec![("latency_ms".to_string(), 20.0 + rng.unit())],
                    a,
                )
            } else {
                let a = vec![
                    (
                        "src_ip".to_string(),
                        AttrValue::Str(format!("10.1.{}.{}", e % 200, e % 250)),
                    ),
                    ("user".to_string(), AttrValue::Str("deploy".into())),
                    ("service".to_string(), AttrValue::Str("ssh".into())),
                    (
                        "outcome".to_string(),
                        AttrValue::Str(
                            if rng.next_u64().is_multiple_of(4) {
                                "failure"
                            } else {
                                "success"
                            }
                            .into(),
                        ),
                    ),
                ];
                (format!("host:ssh-{}", e % 10), "auth", vec![], a)
            };
            Event {
                tenant: tenant.clone(),
                ts,
                entity,
                kind: kind.into(),
                metrics,
                attrs,
                id: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let evs = events();
    let cfg = Arc::new(EngineConfig::default());
    let rules = Arc::new(RuleSet::default_pack());
    // Warm state: every entity past its warm-up, as in a long-running service.
    let mut warm = Partition::new(cfg.clone(), rules.clone());
    let mut out = Outputs::default();
    for _ in 0..3 {
        for (i, ev) in evs.iter().enumerate() {
            warm.on_event(i as u64, ev, &mut out);
            out.clear();
        }
    }
    let snapshot = warm.snapshot().expect("snapshot");
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("mixed_100k_events_one_partition", |b| {
        b.iter_batched_ref(
            || Partition::restore(cfg.clone(), rules.clone(), &snapshot).expect("restore"),
            |p| {
                let mut out = Outputs::default();
                for (i, ev) in evs.iter().enumerate() {
                    p.on_event(i as u64, ev, &mut out);
                    out.clear();
                }
                p.flush_incidents(&mut out);
            },
            BatchSize::LargeInput,
        )
    });
    // The same events with web profiles off: what the profiles (on the 20 % `http` events)
    // cost the mixed engine.
    let mut off_cfg = EngineConfig::default();
    off_cfg.web_profiles.enabled = false;
    let off_cfg = Arc::new(off_cfg);
    let mut off = Partition::new(off_cfg.clone(), rules.clone());
    for _ in 0..3 {
        for (i, ev) in evs.iter().enumerate() {
            off.on_event(i as u64, ev, &mut out);
            out.clear();
        }
    }
    let off_snapshot = off.snapshot().expect("snapshot");
    g.bench_function("mixed_100k_events_profiles_off", |b| {
        b.iter_batched_ref(
            || Partition::restore(off_cfg.clone(), rules.clone(), &off_snapshot).expect("restore"),
            |p| {
                let mut out = Outputs::default();
                for (i, ev) in evs.iter().enumerate() {
                    p.on_event(i as u64, ev, &mut out);
                    out.clear();
                }
                p.flush_incidents(&mut out);
            },
            BatchSize::LargeInput,
        )
    });
    // The same events when their tenant has rules of its own (here: the pack again, as its
    // whole set): one tenant lookup per event instead of none.
    let mut book = antibody_detect::RuleBook::from(rules.clone());
    book.set_tenant(
        TenantId::new("bench"),
        Some(Arc::new(RuleSet::default_pack())),
    );
    let mut own = Partition::new(cfg.clone(), book.clone());
    for _ in 0..3 {
        for (i, ev) in evs.iter().enumerate() {
            own.on_event(i as u64, ev, &mut out);
            out.clear();
        }
    }
    let own_snapshot = own.snapshot().expect("snapshot");
    g.bench_function("mixed_100k_events_tenant_rules", |b| {
        b.iter_batched_ref(
            || Partition::restore(cfg.clone(), book.clone(), &own_snapshot).expect("restore"),
            |p| {
                let mut out = Outputs::default();
                for (i, ev) in evs.iter().enumerate() {
                    p.on_event(i as u64, ev, &mut out);
                    out.clear();
                }
                p.flush_incidents(&mut out);
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // A checkpoint pauses the partition only while it takes the image (entity states are
    // shared copy-on-write); encoding runs on another thread. 10,000 warm entities here.
    let mut g = c.benchmark_group("checkpoint");
    g.sample_size(10);
    g.bench_function("image_10k_entities", |b| b.iter(|| warm.image()));
    g.throughput(Throughput::Bytes(snapshot.len() as u64));
    g.bench_function("snapshot_10k_entities", |b| {
        b.iter(|| warm.snapshot().expect("snapshot"))
    });
    g.finish();
}

/// Shop traffic: 12 endpoints (GET with a query, POST with a form body), parameters of
/// several shapes (ids, quantities, names with non-ASCII, e-mails, free text), 2,000 clients.
fn shop_requests(n: usize, seed: u64) -> Vec<Event> {
    let tenant = TenantId::new("bench");
    let mut rng = SplitMix64::new(seed);
    let names = [
        "Vino+Rioja",
        "Queso+Manchego",
        "Jam%F3n+Ib%E9rico",
        "Aceite+de+oliva",
    ];
    let words = [
        "Calle+Mayor+12",
        "Avda.+del+Puerto+3%2C+2B",
        "C%2F+Gregal+56",
        "Paseo+Mir+141",
    ];
    (0..n)
        .map(|i| {
            let r = rng.next_u64();
            let e = r % 2000;
            let page = (r >> 12) % 12;
            let item = (r >> 20) % 40 + 1;
            let body = match page % 4 {
                0 => format!("id={item}&nombre={}&precio={}&cantidad={}&B1=A%F1adir", names[(r >> 28) as usize % 4], (r >> 30) % 900 + 10, (r >> 40) % 99 + 1),
                1 => format!("modo=entrar&login=user{e}&pwd=p{}x{}&remember=on&B1=Entrar", r % 97, r % 13),
                2 => format!("modo=registro&login=u{e}&email=u{e}%40mail{}.example&direccion={}&cp={:05}&B1=Registrar", r % 50, words[(r >> 33) as usize % 4], r % 52_000),
                _ => format!("id={item}"),
            };
            let post = page >= 6;
            let mut attrs = vec![
                ("src_ip".to_string(), AttrValue::Str(format!("10.2.{}.{}", e / 250, e % 250))),
                ("method".to_string(), AttrValue::Str(if post { "POST" } else { "GET" }.into())),
                ("path".to_string(), AttrValue::Str(format!("/tienda/p{}/page{}.jsp", page % 3, page))),
                ("host".to_string(), AttrValue::Str("shop.example".into())),
                ("user_agent".to_string(), AttrValue::Str("Mozilla/5.0 (X11; Linux x86_64)".into())),
            ];
            if post {
                attrs.push(("content_type".into(), AttrValue::Str("application/x-www-form-urlencoded".into())));
                attrs.push(("body".into(), AttrValue::Str(body)));
            } else {
                attrs.push(("query".into(), AttrValue::Str(body)));
            }
            Event {
                tenant: tenant.clone(),
                ts: 1_700_000_000_000 + i as i64,
                entity: format!("ip:10.2.{}.{}", e / 250, e % 250),
                kind: "http".into(),
                metrics: vec![("latency_ms".to_string(), 20.0 + rng.unit())],
                attrs,
                id: None,
            }
        })
        .collect()
}

/// The whole engine (rules, baselines, correlation) on `http` events with web profiles on
/// (learned, judging every request) and off: the profiles' cost side by side.
fn bench_web_profiles(c: &mut Criterion) {
    let evs = shop_requests(EVENTS, 9);
    let rules = Arc::new(RuleSet::default_pack());
    let mut g = c.benchmark_group("web_profiles");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    for enabled in [true, false] {
        let mut cfg = EngineConfig::default();
        cfg.web_profiles.enabled = enabled;
        let cfg = Arc::new(cfg);
        let mut warm = Partition::new(cfg.clone(), rules.clone());
        let mut out = Outputs::default();
        for (i, ev) in shop_requests(EVENTS, 1).iter().enumerate() {
            warm.on_event(i as u64, ev, &mut out);
            out.clear();
        }
        let snapshot = warm.snapshot().expect("snapshot");
        let name = if enabled {
            "http_100k_profiles_on"
        } else {
            "http_100k_profiles_off"
        };
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || Partition::restore(cfg.clone(), rules.clone(), &snapshot).expect("restore"),
                |p| {
                    let mut out = Outputs::default();
                    for (i, ev) in evs.iter().enumerate() {
                        p.on_event(i as u64, ev, &mut out);
                        out.clear();
                    }
                },
                BatchSize::LargeInput,
            )
        });
        if enabled {
            let t = TenantId::new("bench");
            let profiles = warm.web_profiles(&t).expect("learned");
            // How many of the measured requests the profiles report (each costs a finding).
            let mut p = Partition::restore(cfg.clone(), rules.clone(), &snapshot).expect("restore");
            let mut reported = 0;
            for (i, ev) in evs.iter().enumerate() {
                p.on_event(i as u64, ev, &mut out);
                reported += out
                    .findings
                    .iter()
                    .filter(|f| f.kind == "web_anomaly")
                    .count();
                out.clear();
            }
            eprintln!(
                "web profiles: {} templates, {} bytes ({} per template), snapshot {} bytes, {reported} of {EVENTS} measured requests reported",
                profiles.template_count(),
                profiles.memory_bytes(),
                profiles.memory_bytes() / profiles.template_count().max(1),
                snapshot.len()
            );
        }
    }
    g.finish();
}

/// A production-size model (default training config: 200 trees, 5 folds) on generated agent
/// data, bound to `vitals` events whose metrics carry the 11 raw columns. With `sessions`, the
/// data are per-agent sessions in time order (`--mixed`) and the model also has its sequence
/// part (GRU over each agent's last 10 rows).
fn served_model(
    sessions: bool,
) -> (
    Arc<antibody_ml::serve::ServedModel>,
    Vec<antibody_ml::gen::GenRow>,
) {
    use antibody_ml::data::{Dataset, LabelSpec, RawTable, DEFAULT_NEGATIVES};
    use antibody_ml::features::{AgentBehavior, FeatureSet};
    use antibody_ml::gen::{generate, write_csv, GenConfig};
    use antibody_ml::model::{Model, TrainingInfo};
    use antibody_ml::train::{train, NoProgress, TrainConfig};
    let rows = generate(&GenConfig {
        rows: 8000,
        seed: 3,
        mixed: sessions,
        ..GenConfig::default()
    });
    let mut csv = Vec::new();
    write_csv(&rows, &mut csv).expect("csv");
    let table = RawTable::from_reader(csv.as_slice(), true).expect("table");
    let labels = LabelSpec {
        label: "is_threat".into(),
        negatives: DEFAULT_NEGATIVES.iter().map(|s| s.to_string()).collect(),
        type_column: Some("threat_type".into()),
    };
    let set = FeatureSet::AgentBehavior(AgentBehavior::default());
    let mut ds = Dataset::from_table(&table, &set, Some(&labels)).expect("dataset");
    if sessions {
        ds.set_entities(&table, "agent_id").expect("agent ids");
    }
    let cfg = TrainConfig::default();
    let t = train(&ds, &cfg, &mut NoProgress).expect("train");
    let info = TrainingInfo {
        data_file: "gen".into(),
        data_sha256: String::new(),
        rows: 8000,
        train_rows: t.train_rows as u64,
        test_rows: t.test_rows as u64,
        config: cfg,
    };
    let mut model = Model::new(set, labels, true, info, t.report, t.ensemble);
    model.set_training_data(&ds, 1);
    // Live traffic is mostly benign: every benign row, one attack row in fifty (the
    // generator writes about a third attacks, and every report is explained with TreeSHAP).
    let live: Vec<_> = generate(&GenConfig {
        rows: EVENTS * 3 / 2,
        seed: 9,
        mixed: sessions,
        ..GenConfig::default()
    })
    .into_iter()
    .enumerate()
    .filter(|(i, r)| !r.is_threat() || i % 50 == 0)
    .map(|(_, r)| r)
    .take(EVENTS)
    .collect();
    (Arc::new(antibody_ml::serve::ServedModel::new(model)), live)
}

/// The same engine with a bound model scoring every event (agent events, ~2 % attacks, batches
/// of 1,000 as the pipeline hands them over): the cost of learned detection in the hot path.
fn bench_model(c: &mut Criterion) {
    bench_served(c, false, "agent_events_batches_of_1000");
    bench_served(c, true, "agent_sessions_with_sequence_model");
}

fn bench_served(c: &mut Criterion, sessions: bool, name: &str) {
    use antibody_detect::{ModelBinding, ModelSet, Slot, Source};
    use antibody_ml::features::AGENT_INPUT_COLUMNS;
    let (scorer, live) = served_model(sessions);
    let tenant = TenantId::new("bench");
    let evs: Vec<(u64, Event)> = live
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let raw = r.raw.to_array();
            let metrics = AGENT_INPUT_COLUMNS
                .iter()
                .zip(raw)
                .map(|(c, v)| (c.to_string(), v))
                .collect();
            let ev = Event {
                tenant: tenant.clone(),
                ts: 1_700_000_000_000 + i as i64,
                entity: format!("agent:{}", r.agent),
                kind: "vitals".into(),
                metrics,
                attrs: Vec::new(),
                id: None,
            };
            (i as u64, ev)
        })
        .collect();
    let binding = ModelBinding {
        id: "agents-v1".into(),
        tenant: tenant.clone(),
        name: "agents".into(),
        version: 1,
        event_kind: "vitals".into(),
        slot: Slot::Active,
        sources: AGENT_INPUT_COLUMNS
            .iter()
            .map(|c| Source::parse(&format!("metrics.{c}")).expect("source"))
            .collect(),
        scorer,
        review_band: 0.1,
        drift_psi: 0.2,
        drift_window: 1000,
    };
    let models = Arc::new(ModelSet::new(vec![binding]));
    let cfg = Arc::new(EngineConfig::default());
    let rules = Arc::new(RuleSet::default_pack());
    let mut g = c.benchmark_group("engine_with_model");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.sample_size(10);
    g.bench_function(name, |b| {
        b.iter_batched_ref(
            || {
                let mut p = Partition::new(cfg.clone(), rules.clone());
                p.set_models(models.clone());
                p
            },
            |p| {
                let mut out = Outputs::default();
                for chunk in evs.chunks(1000) {
                    p.on_events(chunk, &mut out);
                    out.clear();
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench, bench_model, bench_web_profiles);
criterion_main!(benches);
