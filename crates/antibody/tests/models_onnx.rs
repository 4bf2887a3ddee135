//! A tenant's own ONNX model served like a built-in one (`--features onnx`): uploaded with a
//! feature mapping, it reports findings with occlusion contributions; hostile files are refused;
//! labels on its findings never claim or start a retrain (only ensembles can be retrained).
#![cfg(feature = "onnx")]

mod common;

use base64::Engine as _;
use common::{eventually, TestServer, ADMIN_KEY};
use serde_json::json;
use std::time::Duration;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../antibody-onnx/tests/fixtures")
        .join(name);
    std::fs::read(path).expect("fixture")
}

fn upload(file: &[u8]) -> String {
    json!({
        "name": "custom",
        "format": "onnx",
        "file": base64::engine::general_purpose::STANDARD.encode(file),
        "event_kind": "net",
        "mapping": {"a": "metrics.a", "b": "metrics.b", "c": "metrics.c"},
        "onnx": {"features": ["a", "b", "c"], "output": "probability", "threshold": 0.9},
    })
    .to_string()
}

#[test]
fn an_uploaded_onnx_model_reports_and_explains() {
    let s = TestServer::start();
    let r = s.post_json("/v1/models", ADMIN_KEY, &upload(b"\x08\x07garbage"));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = s.post_json(
        "/v1/models",
        ADMIN_KEY,
        &upload(&fixture("wrong_rank.onnx")),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = s.post_json("/v1/models", ADMIN_KEY, &upload(&fixture("logreg.onnx")));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["format"], "onnx");
    // sigmoid(0.5·a − 3·b + 0.25·c − 0.1): a = 10 scores 0.993, b = 2 scores 0.002.
    let events = "{\"entity\":\"h1\",\"kind\":\"net\",\"metrics\":{\"a\":10,\"b\":0,\"c\":0}}\n\
                  {\"entity\":\"h2\",\"kind\":\"net\",\"metrics\":{\"a\":0,\"b\":2,\"c\":0}}\n";
    assert_eq!(s.post_ndjson(ADMIN_KEY, events).status, 202);
    let f = eventually(Duration::from_secs(10), || {
        let r = s.get("/v1/findings?kind=model:custom", ADMIN_KEY);
        r.json()["items"].as_array()?.first().cloned()
    });
    assert_eq!(f["entity"], "h1");
    assert!((f["score"].as_f64().unwrap() - 0.9926).abs() < 1e-3, "{f}");
    let top = f["explanation"]["contributions"].as_object().unwrap();
    assert!(top["a"].as_f64().unwrap() > 0.9, "{top:?}");
    let r = s.get("/v1/findings?entity=h2", ADMIN_KEY);
    assert!(r.json()["items"].as_array().unwrap().is_empty());
}

#[test]
fn labels_on_an_onnx_model_never_claim_a_retrain() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("antibody.toml");
    std::fs::write(&config, "[models]\nretrain_min_labels = 1\n").unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let s = TestServer::start_in(&data, &["--config", config.to_str().unwrap()]);
    let r = s.post_json("/v1/models", ADMIN_KEY, &upload(&fixture("logreg.onnx")));
    assert_eq!(r.status, 201, "{}", r.text());
    let events = "{\"entity\":\"h1\",\"kind\":\"net\",\"metrics\":{\"a\":10,\"b\":0,\"c\":0}}\n\
                  {\"entity\":\"h3\",\"kind\":\"net\",\"metrics\":{\"a\":12,\"b\":0,\"c\":0}}\n";
    assert_eq!(s.post_ndjson(ADMIN_KEY, events).status, 202);
    let found = eventually(Duration::from_secs(10), || {
        let r = s.get("/v1/findings?kind=model:custom", ADMIN_KEY);
        let items = r.json()["items"].as_array()?.clone();
        (items.len() == 2).then_some(items)
    });
    // Past `retrain_min_labels`: the labels are taken, no retrain is claimed.
    for f in &found {
        let body = json!({"finding": f["id"], "label": "true_positive"}).to_string();
        let r = s.post_json("/v1/feedback", ADMIN_KEY, &body);
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.json()["retraining"], false, "{}", r.text());
    }
}
