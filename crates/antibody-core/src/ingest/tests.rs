use super::*;
use crate::clock::format_rfc3339;
use crate::AttrValue;
use proptest::prelude::*;

const NOW: TimestampMs = 1_795_255_200_000;

fn tenant() -> TenantId {
    TenantId::new("acme")
}

fn parse_with(body: &str, format: BodyFormat, limits: &Limits) -> Result<ParsedBatch, IngestError> {
    parse_events(body.as_bytes(), format, &tenant(), NOW, limits)
}

/// Default limits but any `ts`: most tests use fixed timestamps far from `NOW`.
fn parse(body: &str, format: BodyFormat) -> Result<ParsedBatch, IngestError> {
    parse_with(
        body,
        format,
        &Limits {
            max_future_ms: i64::MAX,
            ..Limits::default()
        },
    )
}

/// The one event a single-object body yields.
fn one(body: &str) -> Event {
    let batch = parse(body, BodyFormat::Json).unwrap();
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    assert_eq!(batch.events.len(), 1);
    batch.events.into_iter().next().unwrap()
}

/// Why a single-object body was rejected (as an NDJSON line, so the message is the item's).
fn why(body: &str) -> String {
    let ndjson = format!("{body}\n{{\"entity\":\"ok\",\"kind\":\"ok\"}}");
    let batch = parse(&ndjson, BodyFormat::Ndjson).unwrap();
    assert_eq!(batch.events.len(), 1, "{body} was accepted");
    assert_eq!(batch.rejected.len(), 1);
    assert_eq!(batch.rejected[0].index, 0);
    batch.rejected[0].error.clone()
}

fn assert_why(body: &str, expected: &str) {
    let got = why(body);
    assert!(
        got.contains(expected),
        "{body}\n  got: {got}\n  expected: {expected}"
    );
}

fn obj(extra: &str) -> String {
    format!(r#"{{"entity":"agent:a","kind":"vitals"{extra}}}"#)
}

#[test]
fn a_full_event_is_read() {
    let ev = one(
        r#"{"ts": "2026-11-21T10:00:00Z", "entity": "agent:research-7", "kind": "vitals",
            "metrics": {"latency_ms": 812, "tokens": 1530, "cost_usd": 0.25},
            "attrs": {"model": "gpt-4.1", "status": 200, "cached": true},
            "id": "k-1"}"#,
    );
    assert_eq!(
        ev,
        Event {
            tenant: tenant(),
            ts: 1_795_255_200_000,
            entity: "agent:research-7".into(),
            kind: "vitals".into(),
            metrics: vec![
                ("latency_ms".into(), 812.0),
                ("tokens".into(), 1530.0),
                ("cost_usd".into(), 0.25)
            ],
            attrs: vec![
                ("model".into(), AttrValue::Str("gpt-4.1".into())),
                ("status".into(), AttrValue::Num(200.0)),
                ("cached".into(), AttrValue::Bool(true)),
            ],
            id: Some("k-1".into()),
        }
    );
}

#[test]
fn optional_fields_default() {
    let ev = one(r#"{"entity":"host:a","kind":"net"}"#);
    assert_eq!(
        (ev.ts, ev.id, ev.metrics.len(), ev.attrs.len()),
        (NOW, None, 0, 0)
    );
    let ev =
        one(r#"{"entity":"host:a","kind":"net","ts":null,"id":null,"metrics":null,"attrs":null}"#);
    assert_eq!(
        (ev.ts, ev.id, ev.metrics.len(), ev.attrs.len()),
        (NOW, None, 0, 0)
    );
}

#[test]
fn escaped_strings_are_decoded() {
    let ev = one(r#"{"entity":"agent:\u0041\"b","kind":"v\u0031","attrs":{"p\nq":"a\tb"}}"#);
    assert_eq!(ev.entity, "agent:A\"b");
    assert_eq!(ev.kind, "v1");
    assert_eq!(ev.attr_str("p\nq"), Some("a\tb"));
}

#[test]
fn tenant_comes_from_the_caller_only() {
    assert_eq!(one(&obj("")).tenant, tenant());
    assert_why(&obj(r#","tenant":"evil""#), "unknown field `tenant`");
}

#[test]
fn required_fields_are_required() {
    assert_why(r#"{"kind":"vitals"}"#, "missing required field `entity`");
    assert_why(r#"{"entity":"agent:a"}"#, "missing required field `kind`");
    assert_why("{}", "missing required field `entity`");
}

#[test]
fn entity_is_validated() {
    assert_why(r#"{"entity":"","kind":"k"}"#, "`entity` must not be empty");
    assert_why(
        r#"{"entity":7,"kind":"k"}"#,
        "`entity` must be a string, found an integer",
    );
    assert_why(
        r#"{"entity":null,"kind":"k"}"#,
        "`entity` must be a string, found null",
    );
    assert_why(r#"{"entity":"a\u0007b","kind":"k"}"#, "control characters");
    assert_why(r#"{"entity":"a\nb","kind":"k"}"#, "control characters");
    let long = format!(r#"{{"entity":"{}","kind":"k"}}"#, "e".repeat(513));
    assert_why(&long, "`entity` is 513 bytes; the limit is 512");
    let ok = format!(r#"{{"entity":"{}","kind":"k"}}"#, "é".repeat(256));
    assert_eq!(one(&ok).entity.len(), 512);
}

#[test]
fn kind_is_validated() {
    assert_eq!(
        one(r#"{"entity":"a","kind":"rule:sqli-1.v_2"}"#).kind,
        "rule:sqli-1.v_2"
    );
    assert_why(r#"{"entity":"a","kind":""}"#, "`kind` must not be empty");
    assert_why(
        r#"{"entity":"a","kind":"a b"}"#,
        "may only contain letters, digits",
    );
    assert_why(r#"{"entity":"a","kind":"é"}"#, "may only contain");
    assert_why(
        r#"{"entity":"a","kind":["x"]}"#,
        "`kind` must be a string, found an array",
    );
    let long = format!(r#"{{"entity":"a","kind":"{}"}}"#, "k".repeat(65));
    assert_why(&long, "`kind` is 65 bytes; the limit is 64");
}

#[test]
fn ts_accepts_rfc3339_and_epoch_ms() {
    assert_eq!(one(&obj(r#","ts":1700000000123"#)).ts, 1_700_000_000_123);
    assert_eq!(
        one(&obj(r#","ts":"2026-11-21T11:00:00.5+01:00""#)).ts,
        NOW + 500
    );
    assert_eq!(one(&obj(r#","ts":0"#)).ts, 0);
    assert_eq!(
        one(&obj(r#","ts":"9999-12-31T23:59:59.999Z""#)).ts,
        253_402_300_799_999
    );
}

#[test]
fn ts_out_of_range_or_malformed_is_rejected() {
    assert_why(&obj(r#","ts":-1"#), "`ts` is before 1970");
    assert_why(
        &obj(r#","ts":"1969-12-31T23:59:59Z""#),
        "`ts` is before 1970",
    );
    assert_why(
        &obj(r#","ts":253402300800000"#),
        "`ts` is after the year 9999",
    );
    assert_why(
        &obj(r#","ts":"9999-12-31T23:59:59-01:00""#),
        "after the year 9999",
    );
    assert_why(&obj(r#","ts":18446744073709551615"#), "must be an integer");
    assert_why(
        &obj(r#","ts":1.5"#),
        "`ts` in epoch milliseconds must be an integer",
    );
    assert_why(
        &obj(r#","ts":"yesterday""#),
        "`ts` `yesterday` is not an RFC 3339 timestamp",
    );
    assert_why(&obj(r#","ts":true"#), "found a boolean");
    assert_why(&obj(r#","ts":{}"#), "found an object");
}

#[test]
fn metrics_must_be_finite_numbers() {
    let ev = one(&obj(
        r#","metrics":{"a":-3,"b":1.5e3,"c":18446744073709551615,"d":-0.0}"#,
    ));
    assert_eq!(ev.metric("a"), Some(-3.0));
    assert_eq!(ev.metric("b"), Some(1500.0));
    assert_eq!(ev.metric("c"), Some(18_446_744_073_709_551_615.0));
    for (value, shape) in [
        (r#""12""#, "a string"),
        ("true", "a boolean"),
        ("null", "null"),
        ("{}", "an object"),
        ("[1]", "an array"),
    ] {
        let body = obj(&format!(r#","metrics":{{"tokens":{value}}}"#));
        assert_why(
            &body,
            &format!("metric `tokens` must be a finite number, found {shape}"),
        );
    }
    assert_why(
        &obj(r#","metrics":[1]"#),
        "`metrics` must be a JSON object, found an array",
    );
    assert_why(
        &obj(r#","metrics":3"#),
        "`metrics` must be a JSON object, found a number",
    );
}

#[test]
fn overflowing_numbers_are_rejected() {
    assert_why(
        &obj(r#","metrics":{"tokens":1e400}"#),
        "number out of range",
    );
    assert_why(&obj(r#","attrs":{"x":-1e400}"#), "number out of range");
    let body = format!("[{}, {}]", obj(""), obj(r#","metrics":{"tokens":1e400}"#));
    let err = parse(&body, BodyFormat::Json).unwrap_err();
    assert!(matches!(err, IngestError::InvalidJson { .. }), "{err:?}");
}

#[test]
fn attrs_hold_scalars_only() {
    let ev = one(&obj(r#","attrs":{"s":"x","n":-2.5,"b":false}"#));
    assert_eq!(ev.attr("n"), Some(&AttrValue::Num(-2.5)));
    assert_eq!(ev.attr("b"), Some(&AttrValue::Bool(false)));
    for (value, shape) in [
        ("null", "null"),
        (r#"{"a":1}"#, "an object"),
        ("[]", "an array"),
    ] {
        let body = obj(&format!(r#","attrs":{{"src_ip":{value}}}"#));
        assert_why(
            &body,
            &format!("attr `src_ip` must be a string, number or boolean, found {shape}"),
        );
    }
    assert_why(
        &obj(r#","attrs":"x""#),
        "`attrs` must be a JSON object, found a string",
    );
}

#[test]
fn huge_strings_are_rejected_with_their_size() {
    let limits = Limits::default();
    let at_limit = obj(&format!(
        r#","attrs":{{"body":"{}"}}"#,
        "x".repeat(limits.max_string_bytes)
    ));
    assert_eq!(one(&at_limit).attrs.len(), 1);
    let over = obj(&format!(
        r#","attrs":{{"body":"{}"}}"#,
        "x".repeat(limits.max_string_bytes + 1)
    ));
    assert_why(&over, "attr `body` is 65537 bytes; the limit is 65536");
}

#[test]
fn id_is_bounded() {
    assert_eq!(
        one(&obj(&format!(r#","id":"{}""#, "i".repeat(256))))
            .id
            .unwrap()
            .len(),
        256
    );
    assert_why(
        &obj(&format!(r#","id":"{}""#, "i".repeat(257))),
        "`id` is 257 bytes; the limit is 256",
    );
    assert_why(&obj(r#","id":"""#), "`id` must not be empty");
    assert_why(
        &obj(r#","id":5"#),
        "`id` must be a string, found an integer",
    );
}

#[test]
fn unknown_fields_list_the_allowed_ones() {
    assert_why(
        &obj(r#","severity":3"#),
        "unknown field `severity`; allowed fields are `entity`, `kind`, `ts`, `metrics`, `attrs` and `id`",
    );
    let long = "f".repeat(500);
    let got = why(&obj(&format!(r#","{long}":1"#)));
    assert!(
        got.len() < 250,
        "the key is shortened in the message: {got}"
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    assert_why(
        r#"{"entity":"a","kind":"k","entity":"b"}"#,
        "duplicate field `entity`",
    );
    assert_why(
        &obj(r#","metrics":{},"metrics":{}"#),
        "duplicate field `metrics`",
    );
    assert_why(
        &obj(r#","metrics":{"a":1,"b":2,"a":3}"#),
        "duplicate metric `a`",
    );
    assert_why(&obj(r#","attrs":{"a":1,"a":"x"}"#), "duplicate attr `a`");
    // The same name as a metric and an attr is fine: separate namespaces.
    assert_eq!(
        one(&obj(r#","metrics":{"a":1},"attrs":{"a":"x"}"#))
            .attrs
            .len(),
        1
    );
    // Past the pairwise threshold, the sorted check takes over.
    let mut many: Vec<String> = (0..40).map(|i| format!(r#""m{i}":{i}"#)).collect();
    many.push(r#""m7":0"#.into());
    assert_why(
        &obj(&format!(r#","metrics":{{{}}}"#, many.join(","))),
        "duplicate metric `m7`",
    );
}

#[test]
fn names_are_bounded() {
    let name = "n".repeat(128);
    assert_eq!(
        one(&obj(&format!(r#","metrics":{{"{name}":1}}"#)))
            .metrics
            .len(),
        1
    );
    let name = "n".repeat(129);
    assert_why(
        &obj(&format!(r#","metrics":{{"{name}":1}}"#)),
        "longer than 128 bytes",
    );
    assert_why(&obj(r#","attrs":{"":"x"}"#), "attr names must not be empty");
}

#[test]
fn field_count_is_bounded_across_metrics_and_attrs() {
    let fields = |n: usize, prefix: &str| -> String {
        (0..n)
            .map(|i| format!(r#""{prefix}{i}":1"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    let ok = obj(&format!(
        r#","metrics":{{{}}},"attrs":{{{}}}"#,
        fields(200, "m"),
        fields(56, "a")
    ));
    assert_eq!(one(&ok).attrs.len(), 56);
    let over = obj(&format!(
        r#","metrics":{{{}}},"attrs":{{{}}}"#,
        fields(200, "m"),
        fields(57, "a")
    ));
    assert_why(&over, "more than 256 metrics and attrs in one event");
}

fn nested(open: &str, close: &str, levels: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

#[test]
fn nesting_is_bounded() {
    // attrs is level 2, so six more arrays reach level 8 and a seventh goes past it.
    let at_limit = obj(&format!(r#","attrs":{{"x":{}}}"#, nested("[", "]", 6, "1")));
    assert_why(
        &at_limit,
        "attr `x` must be a string, number or boolean, found an array",
    );
    let past = obj(&format!(r#","attrs":{{"x":{}}}"#, nested("[", "]", 7, "1")));
    assert_why(&past, "attr `x`: nesting deeper than 8 levels");
    let past = obj(&format!(r#","extra":{}"#, nested(r#"{"a":"#, "}", 8, "1")));
    assert_why(&past, "field `extra`: nesting deeper than 8 levels");
}

#[test]
fn very_deep_bodies_give_a_depth_error_not_a_stack_overflow() {
    let deep = 100_000;
    let arrays = nested("[", "]", deep, "");
    let err = parse(&arrays, BodyFormat::Json).unwrap_err();
    assert_eq!(
        err,
        IngestError::NothingParseable {
            first_error: "item 0: each event: nesting deeper than 8 levels".into()
        }
    );
    let objects = nested(r#"{"a":"#, "}", deep, "1");
    for format in [BodyFormat::Json, BodyFormat::Ndjson] {
        let err = parse(&objects, format).unwrap_err();
        assert!(
            err.to_string().contains("nesting deeper than 8 levels"),
            "{err}"
        );
    }
    let unclosed = "[".repeat(deep);
    let err = parse(&unclosed, BodyFormat::Json).unwrap_err();
    assert!(matches!(err, IngestError::InvalidJson { .. }), "{err:?}");
    assert!(parse(&unclosed, BodyFormat::Ndjson).is_err());
}

#[test]
fn non_object_items_are_rejected() {
    let body = format!(r#"[1, "x", null, [], true, {}]"#, obj(""));
    let batch = parse(&body, BodyFormat::Json).unwrap();
    assert_eq!(batch.events.len(), 1);
    let errors: Vec<_> = batch
        .rejected
        .iter()
        .map(|r| (r.index, r.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (0, "each event must be a JSON object, found a number"),
            (1, "each event must be a JSON object, found a string"),
            (2, "each event must be a JSON object, found null"),
            (3, "each event must be a JSON object, found an array"),
            (4, "each event must be a JSON object, found a boolean"),
        ]
    );
}

#[test]
fn a_json_array_rejects_bad_items_only() {
    let body = format!("[{}, {{\"kind\":\"x\"}}, {}]", obj(""), obj(r#","id":"2""#));
    let batch = parse(&body, BodyFormat::Json).unwrap();
    assert_eq!(batch.events.len(), 2);
    assert_eq!(
        batch.rejected,
        [Rejected {
            index: 1,
            error: "missing required field `entity`".into()
        }]
    );
}

#[test]
fn a_syntax_error_in_a_json_array_fails_the_body() {
    let body = format!("[{},\n  {{\"entity\": }}]", obj(""));
    let err = parse(&body, BodyFormat::Json).unwrap_err();
    assert_eq!(
        err,
        IngestError::InvalidJson {
            line: 2,
            column: 14,
            message: "expected value".into()
        }
    );
    assert_eq!(err.code(), "invalid_json");
    let trailing = format!("{} {}", obj(""), obj(""));
    assert!(matches!(
        parse(&trailing, BodyFormat::Json),
        Err(IngestError::InvalidJson { .. })
    ));
}

#[test]
fn ndjson_rejects_bad_lines_only() {
    let body = format!(
        "{}\n\n   \n{{\"entity\": \n{}\r\n{} {}\n[1]\n",
        obj(""),
        obj(r#","id":"b""#),
        obj(""),
        obj("")
    );
    let batch = parse(&body, BodyFormat::Ndjson).unwrap();
    assert_eq!(batch.events.len(), 2);
    let errors: Vec<_> = batch
        .rejected
        .iter()
        .map(|r| (r.index, r.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (1, "invalid JSON at column 11: EOF while parsing a value"),
            (3, "invalid JSON at column 38: trailing characters; objects follow each other on one line, as `curl -d @file` makes of NDJSON (it strips newlines); send the file with --data-binary @events.ndjson and -H 'Content-Type: application/x-ndjson'"),
            (4, "each event must be a JSON object, found an array"),
        ]
    );
}

#[test]
fn ndjson_with_crlf_line_endings() {
    let body = format!(
        "{}\r\n{}\r\n\r\n{}\r\n",
        obj(""),
        obj(r#","id":"x""#),
        obj("")
    );
    let batch = parse(&body, BodyFormat::Ndjson).unwrap();
    assert_eq!(batch.events.len(), 3);
    assert_eq!(batch.events[1].id.as_deref(), Some("x"));
    assert!(batch.rejected.is_empty());
}

#[test]
fn invalid_utf8_never_panics() {
    let mut body = obj(r#","attrs":{"a":"x"}"#).into_bytes();
    let at = body.len() - 4;
    body[at] = 0xff;
    let err =
        parse_events(&body, BodyFormat::Json, &tenant(), NOW, &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        IngestError::InvalidJson {
            line: 1,
            column: at + 1,
            message: "invalid UTF-8".into()
        }
    );
    let mut ndjson = obj("").into_bytes();
    ndjson.push(b'\n');
    ndjson.extend_from_slice(&body);
    let batch = parse_events(
        &ndjson,
        BodyFormat::Ndjson,
        &tenant(),
        NOW,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.rejected[0].index, 1);
    assert_eq!(
        batch.rejected[0].error,
        format!("invalid UTF-8 at byte {at} of the line")
    );
}

#[test]
fn body_and_line_sizes_are_bounded() {
    let limits = Limits {
        max_body_bytes: 100,
        max_line_bytes: 40,
        ..Limits::default()
    };
    let err = parse_with(&" ".repeat(101), BodyFormat::Json, &limits).unwrap_err();
    assert_eq!(err, IngestError::TooLarge { limit: 100 });
    let long_line = obj(r#","id":"long-enough""#);
    let body = format!("{}\n{long_line}\n", obj(""));
    let batch = parse_with(&body, BodyFormat::Ndjson, &limits).unwrap();
    assert_eq!(batch.events.len(), 1);
    assert_eq!(
        batch.rejected,
        [Rejected {
            index: 1,
            error: format!("line is {} bytes; the limit is 40", long_line.len())
        }]
    );
}

#[test]
fn event_count_is_bounded() {
    let limits = Limits {
        max_events: 3,
        ..Limits::default()
    };
    let items = |n: usize| vec![obj(""); n];
    let batch = parse_with(
        &format!("[{}]", items(3).join(",")),
        BodyFormat::Json,
        &limits,
    )
    .unwrap();
    assert_eq!(batch.events.len(), 3);
    let err = parse_with(
        &format!("[{}]", items(4).join(",")),
        BodyFormat::Json,
        &limits,
    )
    .unwrap_err();
    assert_eq!(err, IngestError::TooManyEvents { limit: 3 });
    assert_eq!(err.code(), "too_many_events");
    // Rejected items count too; blank lines do not.
    let body = format!("{}\n\n{{}}\n\n{}\n", obj(""), obj(""));
    assert_eq!(
        parse_with(&body, BodyFormat::Ndjson, &limits)
            .unwrap()
            .events
            .len(),
        2
    );
    let body = format!("{body}{}", obj(""));
    assert_eq!(
        parse_with(&body, BodyFormat::Ndjson, &limits).unwrap_err(),
        IngestError::TooManyEvents { limit: 3 }
    );
}

#[test]
fn nothing_parseable_explains_why() {
    for (body, format) in [
        ("", BodyFormat::Json),
        ("  \n ", BodyFormat::Json),
        ("\n\r\n", BodyFormat::Ndjson),
    ] {
        let err = parse(body, format).unwrap_err();
        assert!(err.to_string().contains("the body is empty"), "{err}");
        assert_eq!(err.code(), "no_valid_events");
    }
    let err = parse("[]", BodyFormat::Json).unwrap_err();
    assert!(err.to_string().contains("the body is empty"), "{err}");
    let err = parse(r#"[{"kind":"k"}, {"entity":"e"}]"#, BodyFormat::Json).unwrap_err();
    assert_eq!(
        err,
        IngestError::NothingParseable {
            first_error: "item 0: missing required field `entity`".into()
        }
    );
    let err = parse(r#"{"entity":"e"}"#, BodyFormat::Json).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the body holds no acceptable event: item 0: missing required field `kind`"
    );
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let body = format!("\u{feff}{}\n{}", obj(""), obj(""));
    assert_eq!(BodyFormat::sniff(body.as_bytes()), BodyFormat::Ndjson);
    assert_eq!(parse(&body, BodyFormat::Ndjson).unwrap().events.len(), 2);
    assert_eq!(
        parse(&body[..body.find('\n').unwrap()], BodyFormat::Json)
            .unwrap()
            .events
            .len(),
        1
    );
}

#[test]
fn content_types_name_formats() {
    let cases = [
        (Some("application/json"), Some(BodyFormat::Json)),
        (
            Some("Application/JSON; charset=utf-8"),
            Some(BodyFormat::Json),
        ),
        (Some("application/x-ndjson"), Some(BodyFormat::Ndjson)),
        (Some("application/ndjson"), Some(BodyFormat::Ndjson)),
        (Some("application/jsonl ; q=1"), Some(BodyFormat::Ndjson)),
        (Some("text/plain"), None),
        (Some(""), None),
        (None, None),
    ];
    for (ct, expected) in cases {
        assert_eq!(BodyFormat::from_content_type(ct), expected, "{ct:?}");
    }
}

#[test]
fn formats_are_sniffed() {
    let two_lines = format!("{}\n{}\n", obj(""), obj(""));
    let cases = [
        ("[{}]", BodyFormat::Json),
        ("\n  [\n{}\n]", BodyFormat::Json),
        (r#"{"entity":"a","kind":"b"}"#, BodyFormat::Json),
        (
            "{\n  \"entity\": \"a\",\n  \"kind\": \"b\"\n}\n",
            BodyFormat::Json,
        ),
        (two_lines.as_str(), BodyFormat::Ndjson),
        ("\r\n {} \r\n{x\r\n", BodyFormat::Ndjson),
        ("", BodyFormat::Json),
    ];
    for (body, expected) in cases {
        assert_eq!(BodyFormat::sniff(body.as_bytes()), expected, "{body:?}");
    }
    assert_eq!(
        BodyFormat::detect(Some("application/json"), two_lines.as_bytes()),
        BodyFormat::Json
    );
    assert_eq!(
        BodyFormat::detect(Some("text/plain"), two_lines.as_bytes()),
        BodyFormat::Ndjson
    );
}

#[test]
fn gzip_bodies_parse_end_to_end() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let body = format!("{}\n{}\n", obj(""), obj(r#","id":"z""#));
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body.as_bytes()).unwrap();
    let raw = enc.finish().unwrap();
    let limits = Limits::default();
    let decoded = decode_body(&raw, Some("gzip"), &limits).unwrap();
    let format = BodyFormat::detect(None, &decoded);
    let batch = parse_events(&decoded, format, &tenant(), NOW, &limits).unwrap();
    assert_eq!(batch.events.len(), 2);
}

#[test]
fn the_default_limits_are_the_contract() {
    let l = Limits::default();
    assert_eq!(
        [
            l.max_body_bytes,
            l.max_line_bytes,
            l.max_events,
            l.max_fields,
            l.max_depth,
            l.max_string_bytes,
            l.max_entity_bytes
        ],
        [
            16 * 1024 * 1024,
            1024 * 1024,
            100_000,
            256,
            8,
            64 * 1024,
            512
        ]
    );
}

// ---- property tests ----

/// Every accepted event obeys the validation rules, whatever the input.
fn assert_valid(batch: &ParsedBatch, limits: &Limits) {
    for ev in &batch.events {
        assert!(!ev.entity.is_empty() && ev.entity.len() <= limits.max_entity_bytes);
        assert!(!ev.entity.chars().any(char::is_control));
        assert!(!ev.kind.is_empty() && ev.kind.len() <= MAX_KIND_BYTES);
        assert!((0..=253_402_300_799_999).contains(&ev.ts));
        assert!(ev.metrics.len() + ev.attrs.len() <= limits.max_fields);
        assert!(ev.metrics.iter().all(|(_, v)| v.is_finite()));
        assert_eq!(ev.tenant, tenant());
    }
    let indices: Vec<usize> = batch.rejected.iter().map(|r| r.index).collect();
    assert!(indices.windows(2).all(|w| w[0] < w[1]));
}

fn any_format() -> impl Strategy<Value = BodyFormat> {
    prop_oneof![Just(BodyFormat::Json), Just(BodyFormat::Ndjson)]
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A small JSON grammar biased toward event-shaped objects, with some invalid tokens mixed in.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        Just("1e400".to_owned()),
        Just("\"2026-11-21T10:00:00Z\"".to_owned()),
        Just("\"host:a\"".to_owned()),
        "\\PC{0,10}".prop_map(|s| json_string(&s)),
        "[ -~]{0,4}",
    ];
    let key = prop_oneof![
        Just("entity"),
        Just("kind"),
        Just("ts"),
        Just("metrics"),
        Just("attrs"),
        Just("id"),
        Just("tenant"),
        Just("x"),
    ]
    .prop_map(json_string);
    leaf.prop_recursive(12, 96, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key.clone(), inner), 0..7).prop_map(|kv| {
                let fields: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

fn json_body() -> impl Strategy<Value = String> {
    prop::collection::vec(json_value(), 0..6).prop_flat_map(|items| {
        prop_oneof![
            Just(items.first().cloned().unwrap_or_default()),
            Just(format!("[{}]", items.join(","))),
            Just(items.join("\n")),
            Just(items.join("\r\n")),
        ]
    })
}

prop_compose! {
    fn valid_event()(
        ts in 0i64..=253_402_300_799_999,
        entity in "[a-z]{1,8}:[^\\p{Cc}]{1,20}",
        kind in "[A-Za-z0-9_.:-]{1,64}",
        metrics in prop::collection::vec(("[a-z_]{1,12}", -1_000_000_000i64..1_000_000_000, 0u32..6), 0..6),
        attrs in prop::collection::vec(("[a-z_]{1,12}", prop_oneof![
            "\\PC{0,30}".prop_map(AttrValue::Str),
            (-1_000_000i64..1_000_000).prop_map(|n| AttrValue::Num(n as f64 / 100.0)),
            any::<bool>().prop_map(AttrValue::Bool),
        ]), 0..6),
        id in proptest::option::of("[ -~]{1,40}"),
    ) -> Event {
        let mut metrics: Vec<(String, f64)> = metrics
            .into_iter()
            .map(|(k, n, scale)| (k, n as f64 / 10f64.powi(scale as i32)))
            .collect();
        let mut seen = std::collections::HashSet::new();
        metrics.retain(|(k, _)| seen.insert(k.clone()));
        let mut seen = std::collections::HashSet::new();
        let attrs = attrs.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
        Event { tenant: tenant(), ts, entity, kind, metrics, attrs, id }
    }
}

/// Renders an event the way a client would send it.
fn render(ev: &Event, rfc3339: bool) -> String {
    let ts = if rfc3339 {
        json_string(&format_rfc3339(ev.ts))
    } else {
        ev.ts.to_string()
    };
    let metrics: Vec<String> = ev
        .metrics
        .iter()
        .map(|(k, v)| format!("{}:{}", json_string(k), serde_json::to_string(v).unwrap()))
        .collect();
    let attrs: Vec<String> = ev
        .attrs
        .iter()
        .map(|(k, v)| format!("{}:{}", json_string(k), serde_json::to_string(v).unwrap()))
        .collect();
    let id = ev
        .id
        .as_deref()
        .map_or(String::new(), |id| format!(",\"id\":{}", json_string(id)));
    format!(
        "{{\"ts\":{ts},\"entity\":{},\"kind\":{},\"metrics\":{{{}}},\"attrs\":{{{}}}{id}}}",
        json_string(&ev.entity),
        json_string(&ev.kind),
        metrics.join(","),
        attrs.join(",")
    )
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        format in any_format(),
    ) {
        let limits = Limits::default();
        if let Ok(batch) = parse_events(&bytes, format, &tenant(), NOW, &limits) {
            assert_valid(&batch, &limits);
        }
        let _ = decode_body(&bytes, Some("gzip"), &limits);
    }

    #[test]
    fn never_panics_on_json_ish_bodies(
        body in json_body(),
        format in any_format(),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let limits = Limits { max_depth: 4, max_fields: 5, ..Limits::default() };
        let mut bytes = body.into_bytes();
        if truncate && !bytes.is_empty() {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(batch) = parse_events(&bytes, format, &tenant(), NOW, &limits) {
            assert_valid(&batch, &limits);
        }
    }

    #[test]
    fn valid_events_round_trip(
        events in prop::collection::vec(valid_event(), 1..5),
        rfc3339 in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let lines: Vec<String> = events.iter().map(|ev| render(ev, rfc3339)).collect();
        let array = format!("[{}]", lines.join(","));
        let ndjson = lines.join(if crlf { "\r\n" } else { "\n" });
        for (body, format) in [(&array, BodyFormat::Json), (&ndjson, BodyFormat::Ndjson)] {
            let batch = parse(body, format).unwrap();
            prop_assert_eq!(&batch.rejected, &Vec::<Rejected>::new());
            prop_assert_eq!(&batch.events, &events);
        }
        let single = parse(&lines[0], BodyFormat::Json).unwrap();
        prop_assert_eq!(&single.events[0], &events[0]);
    }
}

#[test]
fn timestamps_far_in_the_future_are_rejected() {
    let t = TenantId::new("t");
    let now = 1_700_000_000_000;
    let day = 24 * 3600 * 1000;
    let body = format!(
        "{{\"entity\":\"a\",\"kind\":\"k\",\"ts\":{}}}\n{{\"entity\":\"a\",\"kind\":\"k\",\"ts\":{}}}\n",
        now + day - 1,
        now + day + 1
    );
    let got = parse_events(
        body.as_bytes(),
        BodyFormat::Ndjson,
        &t,
        now,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(got.events.len(), 1);
    assert_eq!(got.rejected.len(), 1);
    assert!(
        got.rejected[0].error.contains("in the future"),
        "{}",
        got.rejected[0].error
    );
}
