use super::*;
use antibody_core::AttrValue;

fn cfg() -> WebProfilesConfig {
    WebProfilesConfig {
        learn_requests: 50,
        ..WebProfilesConfig::default()
    }
}

fn http(tenant: &str, method: &str, path: &str, query: &str) -> Event {
    Event {
        tenant: TenantId::new(tenant),
        ts: 0,
        entity: "ip:198.51.100.4".into(),
        kind: "http".into(),
        metrics: vec![],
        attrs: [
            ("method", method),
            ("path", path),
            ("query", query),
            ("host", "shop.example"),
            ("user_agent", "Mozilla/5.0"),
            ("src_ip", "198.51.100.4"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), AttrValue::Str((*v).to_owned())))
        .collect(),
        id: None,
    }
}

/// `n` normal product views and logins.
fn train(p: &mut WebProfiles, c: &WebProfilesConfig, tenant: &str, n: u64) {
    for i in 0..n {
        let q = format!(
            "id={}&name=Vino+Rioja+{}",
            i % 7 + 1,
            ["tinto", "blanco"][i as usize % 2]
        );
        assert!(p
            .on_event(c, &http(tenant, "GET", "/shop/products/item.jsp", &q))
            .is_none());
        let q = format!("modo=entrar&login=user{i}&pwd=se{i}cret");
        assert!(p
            .on_event(c, &http(tenant, "GET", "/shop/login.jsp", &q))
            .is_none());
    }
}

#[test]
fn learns_then_reports_an_injection_with_an_explanation() {
    let c = cfg();
    let mut p = WebProfiles::default();
    train(&mut p, &c, "t", 200);
    let ev = http(
        "t",
        "GET",
        "/shop/products/item.jsp",
        "id=1%27+OR+%271%27%3D%271&name=Vino",
    );
    let v = p
        .on_event(&c, &ev)
        .expect("an injection into a digit parameter");
    assert!(v.score >= 0.9, "{}", v.score);
    let f = finding("f-1-0".into(), &ev, &v);
    assert_eq!(f.kind, "web_anomaly");
    assert_eq!(f.detector.to_string(), "profile");
    assert_eq!(f.severity, Severity::High);
    assert!(
        f.explanation
            .text
            .contains("parameter `id` expected digits, length 1–1"),
        "{}",
        f.explanation.text
    );
    assert!(
        f.explanation.text.contains("seen 200 times"),
        "{}",
        f.explanation.text
    );
    assert!(f.explanation.text.contains("`'`"), "{}", f.explanation.text);
    assert_eq!(f.evidence["template"], "/shop/products/item.jsp");
    assert_eq!(f.evidence["src_ip"], "198.51.100.4");
    // Not learned: the same request is reported again.
    assert!(p.on_event(&c, &ev).is_some());
    // And normal requests still pass.
    assert!(p
        .on_event(
            &c,
            &http(
                "t",
                "GET",
                "/shop/products/item.jsp",
                "id=4&name=Vino+Rioja+tinto"
            )
        )
        .is_none());
}

#[test]
fn nothing_is_judged_while_learning() {
    let c = cfg();
    let mut p = WebProfiles::default();
    train(&mut p, &c, "t", 10);
    let ev = http(
        "t",
        "GET",
        "/shop/products/item.jsp",
        "id=<script>alert(1)</script>",
    );
    assert!(p.on_event(&c, &ev).is_none());
}

#[test]
fn unseen_paths_methods_and_parameters_are_reported() {
    let c = cfg();
    let mut p = WebProfiles::default();
    train(&mut p, &c, "t", 200);
    let what = |p: &mut WebProfiles, ev: &Event| -> Vec<&'static str> {
        p.on_event(&c, ev)
            .map(|v| v.anomalies.iter().map(|a| a.what).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        what(&mut p, &http("t", "GET", "/shop/login.jsp.bak", "")),
        ["unseen_path"]
    );
    assert_eq!(
        what(
            &mut p,
            &http("t", "PUT", "/shop/login.jsp", "modo=entrar&login=a&pwd=b")
        ),
        ["unseen_method"]
    );
    let got = what(
        &mut p,
        &http(
            "t",
            "GET",
            "/shop/login.jsp",
            "modo=entrar&login=user5&pwd=se5cret&debug=1",
        ),
    );
    assert_eq!(got, ["unseen_param"]);
    // A tampered value of a closed set together with a missing parameter.
    let got = what(
        &mut p,
        &http("t", "GET", "/shop/login.jsp", "modo=borrar&login=user5"),
    );
    assert!(
        got.contains(&"value") && got.contains(&"missing_param"),
        "{got:?}"
    );
}

#[test]
fn tenants_and_modes_are_apart() {
    let mut c = cfg();
    c.tenants.insert("quiet".into(), Mode::LearnOnly);
    c.tenants.insert("none".into(), Mode::Off);
    let mut p = WebProfiles::default();
    train(&mut p, &c, "quiet", 200);
    train(&mut p, &c, "none", 200);
    let bad = "id=1;cat+/etc/passwd";
    assert!(p
        .on_event(&c, &http("quiet", "GET", "/shop/products/item.jsp", bad))
        .is_none());
    assert!(
        p.tenant(&TenantId::new("none")).is_none(),
        "off learns nothing"
    );
    // Another tenant has learned nothing: its first requests are learning.
    assert!(p
        .on_event(&c, &http("t", "GET", "/shop/products/item.jsp", bad))
        .is_none());
    // Learn-only learned everything, the bad request too.
    let on = WebProfilesConfig {
        tenants: BTreeMap::new(),
        ..c.clone()
    };
    assert!(p
        .on_event(&on, &http("quiet", "GET", "/shop/products/item.jsp", bad))
        .is_none());
    let disabled = WebProfilesConfig {
        enabled: false,
        ..c
    };
    assert_eq!(disabled.mode_for(&TenantId::new("t")), Mode::Off);
}

#[test]
fn a_false_positive_is_learned_from_the_findings_evidence() {
    let c = cfg();
    let mut p = WebProfiles::default();
    train(&mut p, &c, "t", 200);
    let ev = http(
        "t",
        "GET",
        "/shop/products/item.jsp",
        "id=3&name=Vino+Rioja+(2019)",
    );
    let v = p.on_event(&c, &ev).expect("parentheses were never seen");
    let f = finding("f-1-0".into(), &ev, &v);
    assert!(p.learn_finding(&c, &TenantId::new("t"), &f.evidence));
    assert!(p.on_event(&c, &ev).is_none(), "the value is learned");
    assert!(!p.learn_finding(&c, &TenantId::new("t"), &Map::new()));
}

#[test]
fn templates_are_capped_least_recently_used_first() {
    let c = WebProfilesConfig {
        max_templates_per_tenant: 3,
        learn_requests: 1_000,
        ..cfg()
    };
    let mut p = WebProfiles::default();
    for path in ["/a", "/b", "/c", "/a", "/d"] {
        p.on_event(&c, &http("t", "GET", path, ""));
    }
    let tp = p.tenant(&TenantId::new("t")).unwrap();
    let kept: Vec<&str> = tp.hosts["shop.example"]
        .templates
        .keys()
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(kept, ["/a", "/c", "/d"]);
    let hosts = WebProfilesConfig {
        max_hosts_per_tenant: 1,
        ..c
    };
    let mut other = http("t", "GET", "/a", "");
    other.attrs.retain(|(k, _)| k != "host");
    assert!(p.on_event(&hosts, &other).is_none());
    assert_eq!(p.hosts_refused, 1);
}

#[test]
fn export_merge_import_and_reset() {
    let c = cfg();
    let (mut a, mut b) = (WebProfiles::default(), WebProfiles::default());
    train(&mut a, &c, "t", 30);
    train(&mut b, &c, "t", 30);
    let t = TenantId::new("t");
    let mut merged = a.tenant(&t).unwrap().clone();
    merged.merge(b.tenant(&t).unwrap());
    let key = (Method::Get, "/shop/login.jsp".to_owned());
    assert_eq!(merged.hosts["shop.example"].templates[&key].requests, 60);
    // The export document round-trips through JSON.
    let json = serde_json::to_string(&merged).unwrap();
    let back: TenantProfiles = serde_json::from_str(&json).unwrap();
    assert_eq!(back, merged);
    // Imported into a fresh partition it judges at once (60 ≥ 50 learned).
    let mut fresh = WebProfiles::default();
    fresh.import(&c, &t, &back);
    let bad = http(
        "t",
        "GET",
        "/shop/login.jsp",
        "modo=entrar&login=a%27--&pwd=x",
    );
    assert!(fresh.on_event(&c, &bad).is_some());
    assert_eq!(
        fresh.reset(
            &t,
            Some("shop.example"),
            Some(Method::Get),
            Some("/shop/login.jsp")
        ),
        [(
            "shop.example".to_owned(),
            Method::Get,
            "/shop/login.jsp".to_owned()
        )]
    );
    assert!(
        fresh.on_event(&c, &bad).is_none(),
        "that template learns again"
    );
    let reset = fresh.tenant(&t).unwrap().hosts["shop.example"].templates[&key].requests;
    assert_eq!(reset, 1, "learning afresh (the bad request was learned)");
    assert_eq!(fresh.reset(&t, None, None, None).len(), 2);
    assert!(fresh.tenant(&t).is_none());
    assert!(merged.memory_bytes() > 0);
}

#[test]
fn config_is_validated() {
    assert!(WebProfilesConfig::default().validate().is_ok());
    for bad in [
        WebProfilesConfig {
            learn_requests: 0,
            ..cfg()
        },
        WebProfilesConfig {
            threshold: 0.0,
            ..cfg()
        },
        WebProfilesConfig {
            threshold: f64::NAN,
            ..cfg()
        },
        WebProfilesConfig {
            max_params_per_template: 0,
            ..cfg()
        },
    ] {
        assert!(bad.validate().is_err());
    }
    let parsed: WebProfilesConfig =
        serde_json::from_value(json!({"mode": "learn_only", "tenants": {"a": "off"}})).unwrap();
    assert_eq!(parsed.mode, Mode::LearnOnly);
    assert_eq!(parsed.mode_for(&TenantId::new("a")), Mode::Off);
}

proptest::proptest! {
    /// What the fuzz target `web_requests` does: raw requests through the profiles, learned,
    /// judged, and any finding's evidence learned back, without a panic.
    #[test]
    fn raw_requests_through_the_profiles_never_panic(
        lines in proptest::collection::vec("(GET|POST|PUT) /[a-z0-9/]{0,12}(\\?[a-z=&%'<>0-9]{0,30})? HTTP/1.1", 1..12),
        body in "[a-z=&%'<>{}\\[\\]\":,0-9]{0,40}",
    ) {
        let mut raw = String::new();
        for l in &lines {
            raw.push_str(&format!("{l}\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}\r\n", body.len()));
        }
        let c = WebProfilesConfig { learn_requests: 2, ..cfg() };
        let t = TenantId::new("t");
        let mut p = WebProfiles::default();
        for (i, r) in antibody_formats::RawHttpReader::new(raw.as_bytes()).enumerate() {
            let ev = r.unwrap().to_event(t.clone(), i as i64);
            for _ in 0..3 {
                if let Some(v) = p.on_event(&c, &ev) {
                    let f = finding(format!("f-{i}"), &ev, &v);
                    proptest::prop_assert!((0.0..=1.0).contains(&f.score));
                    proptest::prop_assert!(p.learn_finding(&c, &t, &f.evidence));
                }
            }
        }
    }
}

/// Parameters are kept sorted with their name hashes; the document lists them as a map (the
/// export format), and reading it back finds every name again.
#[test]
fn template_parameters_serialise_as_a_map_and_read_back_whole() {
    let mut t = TemplateProfile::default();
    let mut req = Request::from_parts(
        "h",
        (Method::Get, "/p".into()),
        "/p",
        [("zeta", &b"1"[..]), ("alpha", b"x"), ("mid", b"y y")].into_iter(),
        None,
        None,
    );
    let mut found = Vec::new();
    resolve(None, &req, &mut found);
    t.learn(&req, &found, 64, 1);
    let json = serde_json::to_value(&t).unwrap();
    let names: Vec<&String> = json["params"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
    let back: TemplateProfile = serde_json::from_value(json).unwrap();
    assert_eq!(back, t);
    req = Request::from_parts(
        "h",
        (Method::Get, "/p".into()),
        "/p",
        [("mid", &b"z"[..]), ("new", b"1"), ("zeta", b"2")].into_iter(),
        None,
        None,
    );
    resolve(Some(&back), &req, &mut found);
    assert_eq!(found, [1, UNKNOWN, 2]);
}
