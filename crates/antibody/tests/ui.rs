//! The operator dashboard over the real binary: `/` is a sign-in page (never a JSON 404),
//! sessions are cookies (HttpOnly, SameSite=Strict) backed by the server, every form needs
//! the session's CSRF token, every value is escaped, pages carry a CSP without inline
//! script, a tenant sees only its own, and the fleet page stays fast with 10,000 entities.

mod common;

use common::{eventually, request, Resp, TestServer, ADMIN_KEY};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A browser's view of the server: cookies kept between requests, no bearer key.
struct Browser<'a> {
    s: &'a TestServer,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(s: &'a TestServer) -> Self {
        Self {
            s,
            cookies: BTreeMap::new(),
        }
    }

    fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Resp {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let cookie = cookie.join("; ");
        let body = form_body(form);
        let mut headers = vec![("Accept", "text/html")];
        if !cookie.is_empty() {
            headers.push(("Cookie", &cookie));
        }
        if method == "POST" {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        let r = request(self.s.addr, method, path, None, &headers, body.as_bytes());
        for (k, v) in &r.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = v.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        r
    }

    fn get(&mut self, path: &str) -> Resp {
        self.send("GET", path, &[])
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.send("POST", path, form)
    }

    /// Opens `/` and signs in with `key`.
    fn sign_in(&mut self, key: &str) -> Resp {
        let page = self.get("/");
        assert_eq!(page.status, 200, "{}", page.text());
        let csrf = csrf_of(&page.text());
        self.post("/ui/signin", &[("csrf", &csrf), ("key", key)])
    }

    /// The CSRF token of the page at `path`.
    fn csrf(&mut self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        csrf_of(&r.text())
    }
}

fn form_body(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_owned()
}

fn set_cookie<'r>(r: &'r Resp, name: &str) -> &'r str {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie {name} in {:?}", r.headers))
}

fn assert_page_headers(r: &Resp) {
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        r.headers
    );
    let csp = r.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

/// 20 ordinary vitals then a ≥ 5σ token spike: the spike waits for approval.
fn spike(entity: &str) -> String {
    let mut body = String::new();
    for i in 0..20 {
        body.push_str(&format!(
            "{{\"entity\":{entity:?},\"kind\":\"vitals\",\"metrics\":{{\"tokens\":{}}}}}\n",
            1000 + i % 3 * 10
        ));
    }
    body.push_str(&format!(
        "{{\"entity\":{entity:?},\"kind\":\"vitals\",\"metrics\":{{\"tokens\":500000}}}}\n"
    ));
    body
}

fn pending_actions(s: &TestServer) -> Vec<serde_json::Value> {
    s.get("/v1/actions?status=pending_approval", ADMIN_KEY)
        .json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn root_is_the_sign_in_page_for_a_browser() {
    let s = TestServer::start();
    let mut b = Browser::new(&s);
    let r = b.get("/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_page_headers(&r);
    let html = r.text();
    assert!(html.contains("type=\"password\""), "{html}");
    assert!(html.contains("<label for=\"key\">"), "{html}");
    let c = set_cookie(&r, "ab_signin");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    // A dashboard address that does not exist is a page, not JSON.
    let r = b.get("/ui/no-such-page");
    assert_eq!(r.status, 404);
    assert_page_headers(&r);
    // The API itself still answers in JSON.
    assert_eq!(s.get("/v1/nope", ADMIN_KEY).error_code(), "not_found");
    // The script and stylesheet: hashed names, cached a year, revalidated by ETag.
    let js = html
        .split("src=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .replace("&#x2f;", "/");
    let r = b.get(&js);
    assert_eq!(r.status, 200, "{js}");
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(r.header("cache-control").unwrap().contains("immutable"));
    let etag = r.header("etag").unwrap().to_owned();
    let again = request(s.addr, "GET", &js, None, &[("If-None-Match", &etag)], b"");
    assert_eq!(again.status, 304);
}

#[test]
fn sign_in_makes_a_session_and_sign_out_ends_it() {
    let s = TestServer::start();
    let mut b = Browser::new(&s);
    // Pages need a session.
    let r = b.get("/ui/fleet");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    assert_eq!(b.get("/ui/stream").status, 303);
    // The sign-in form itself is CSRF-protected (double submit).
    b.get("/");
    let r = b.post(
        "/ui/signin",
        &[("csrf", &"0".repeat(64)), ("key", ADMIN_KEY)],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!b.cookies.contains_key("ab_session"));
    // A wrong key is told as a page, not JSON.
    let r = b.sign_in("ab_not_a_key");
    assert_eq!(r.status, 401);
    assert_page_headers(&r);
    assert!(r.text().contains("unknown API key"), "{}", r.text());
    // An ingest key cannot sign in.
    let ingest = s
        .post_json("/v1/keys", ADMIN_KEY, r#"{"role":"ingest"}"#)
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(b.sign_in(&ingest).status, 403);

    let r = b.sign_in(ADMIN_KEY);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/ui/"));
    let c = set_cookie(&r, "ab_session");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"),
        "{c}"
    );
    assert!(!c.contains(ADMIN_KEY));
    let page = b.get("/ui/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert_page_headers(&page);
    assert!(
        !page.text().contains(ADMIN_KEY),
        "the key never reaches a page"
    );
    // Signed in, `/` goes to the overview.
    assert_eq!(b.get("/").header("location"), Some("/ui/"));
    // Signing in again (the sign-in page is still reachable) gives a new session id and
    // ends the old one.
    let old = b.cookies["ab_session"].clone();
    let mut again = Browser::new(&s);
    again.cookies = b.cookies.clone();
    again.cookies.remove("ab_session");
    let form = again.get("/");
    let csrf = csrf_of(&form.text());
    again.cookies.insert("ab_session".into(), old.clone());
    assert_eq!(
        again
            .post("/ui/signin", &[("csrf", &csrf), ("key", ADMIN_KEY)])
            .status,
        303
    );
    assert_ne!(again.cookies["ab_session"], old);
    assert_eq!(again.get("/ui/").status, 200);
    assert_eq!(b.get("/ui/").status, 303, "the replaced session ended");
    assert_eq!(b.sign_in(ADMIN_KEY).status, 303);

    // Sign-out is a form too: without the token it is refused.
    assert_eq!(b.post("/ui/signout", &[("csrf", "nope")]).status, 403);
    let csrf = b.csrf("/ui/");
    let r = b.post("/ui/signout", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    assert!(set_cookie(&r, "ab_session").contains("Max-Age=0"));
    assert_eq!(b.get("/ui/").status, 303);

    // A key deleted while signed in ends its sessions.
    let analyst = s
        .post_json("/v1/keys", ADMIN_KEY, r#"{"role":"analyst"}"#)
        .json();
    let (secret, id) = (
        analyst["key"].as_str().unwrap().to_owned(),
        analyst["id"].as_str().unwrap().to_owned(),
    );
    let mut b = Browser::new(&s);
    assert_eq!(b.sign_in(&secret).status, 303);
    assert_eq!(b.get("/ui/fleet").status, 200);
    let del = s.request(
        "DELETE",
        &format!("/v1/keys/{id}"),
        Some(ADMIN_KEY),
        &[],
        b"",
    );
    assert_eq!(del.status, 204, "{}", del.text());
    let r = eventually(Duration::from_secs(15), || {
        let r = b.get("/ui/fleet");
        (r.status == 303).then_some(r)
    });
    assert_eq!(r.header("location"), Some("/"));
}

#[test]
fn forms_need_the_session_token_and_act_through_the_api() {
    let s = TestServer::start();
    assert_eq!(s.post_ndjson(ADMIN_KEY, &spike("agent:x")).status, 202);
    let pending = eventually(Duration::from_secs(15), || {
        pending_actions(&s).into_iter().next()
    });
    let id = pending["id"].as_str().unwrap().to_owned();
    let incident = pending["incident"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&s);
    assert_eq!(b.sign_in(ADMIN_KEY).status, 303);

    let approvals = b.get("/ui/approvals").text();
    assert!(approvals.contains(&id), "{approvals}");
    assert!(approvals.contains(">Approve<") && approvals.contains(">Reject<"));
    let csrf = csrf_of(&approvals);
    // No token, a wrong token: refused, nothing changes.
    let path = format!("/ui/actions/{id}/approve");
    assert_eq!(b.post(&path, &[]).status, 403);
    assert_eq!(b.post(&path, &[("csrf", &"f".repeat(64))]).status, 403);
    assert_eq!(pending_actions(&s).len(), 1);
    // Another session's token is not this session's.
    let mut other = Browser::new(&s);
    other.sign_in(ADMIN_KEY);
    let theirs = other.csrf("/ui/");
    assert_ne!(theirs, csrf);
    assert_eq!(b.post(&path, &[("csrf", &theirs)]).status, 403);

    let back = format!("/ui/incidents/{incident}");
    let r = b.post(&path, &[("csrf", &csrf), ("back", &back)]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(back.as_str()));
    let a = s.get(&format!("/v1/actions/{id}"), ADMIN_KEY).json();
    assert_ne!(a["status"], "pending_approval", "{a}");
    // A redirect elsewhere is not followed.
    let r = b.post(
        &format!("/ui/incidents/{incident}/ack"),
        &[("csrf", &csrf), ("back", "https://evil.example/")],
    );
    assert_eq!(r.header("location"), Some(back.as_str()));
    let inc = s.get(&back.replace("/ui/", "/v1/"), ADMIN_KEY).json();
    assert_eq!(inc["status"], "acknowledged", "{inc}");
    // The API's refusals come back as pages with its message.
    let r = b.post("/ui/entities/agent:none/heal", &[("csrf", &csrf)]);
    assert!(r.status >= 400 && r.status < 500, "{}", r.text());
    assert_page_headers(&r);
    let note = b.post(
        &format!("/ui/incidents/{incident}/notes"),
        &[("csrf", &csrf), ("text", "looked at it")],
    );
    assert_eq!(note.status, 303);
    let page = b.get(&back).text();
    assert!(page.contains("looked at it"), "{page}");
    let r = b.post(
        &format!("/ui/incidents/{incident}/resolve"),
        &[("csrf", &csrf), ("resolution", "mitigated")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let page = b.get(&back).text();
    assert!(page.contains("Post-mortem"), "{page}");
    let audit = b.get("/ui/audit?verify=1").text();
    assert!(audit.contains("Chain verified"), "{audit}");
}

#[test]
fn every_value_is_escaped() {
    let s = TestServer::start();
    let evil = "agent:<script>alert(1)</script>";
    // A tenant rule whose text (its literal) lands in its findings' explanation.
    let rule = "- id: xss-canary\n  kind: xss_canary\n  description: \"</textarea><script>alert(3)</script>\"\n  severity: high\n  events: {kinds: [http]}\n  signature:\n    fields: [query]\n    literals: [\"<script>alert(2)</script>\"]\n";
    let r = s.request(
        "PUT",
        "/v1/rules/canary",
        Some(ADMIN_KEY),
        &[("Content-Type", "application/yaml")],
        rule.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut body = spike(evil);
    body.push_str(&format!(
        "{{\"entity\":{evil:?},\"kind\":\"http\",\"attrs\":{{\"src_ip\":\"198.51.100.9\",\"method\":\"GET\",\"path\":\"/q\",\"query\":\"x=<script>alert(2)</script>\"}}}}\n"
    ));
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
    let incident = eventually(Duration::from_secs(15), || {
        let v = s.get("/v1/findings?kind=xss_canary", ADMIN_KEY).json();
        v["items"][0]["incident"].as_str().map(str::to_owned)
    });
    eventually(Duration::from_secs(15), || {
        pending_actions(&s).into_iter().next()
    });
    let mut b = Browser::new(&s);
    b.sign_in(ADMIN_KEY);
    let entity = format!("/ui/entities/{}", enc(evil));
    let pages = [
        "/ui/".to_owned(),
        "/ui/fleet".to_owned(),
        "/ui/fleet?q=script".to_owned(),
        entity,
        "/ui/incidents".to_owned(),
        format!("/ui/incidents/{incident}"),
        "/ui/approvals".to_owned(),
        "/ui/audit".to_owned(),
        "/ui/notifications".to_owned(),
        "/ui/models".to_owned(),
        "/ui/response".to_owned(),
        "/ui/response/edit?doc=rules&name=canary".to_owned(),
    ];
    for p in &pages {
        let r = b.get(p);
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        assert_page_headers(&r);
        let html = r.text();
        assert!(
            !html.contains("<script>alert"),
            "{p} carries raw markup:\n{html}"
        );
        // Our own script is the only script element.
        assert_eq!(html.matches("<script").count(), 1, "{p}");
    }
    let inc = b.get(&format!("/ui/incidents/{incident}")).text();
    assert!(
        inc.contains("&lt;script&gt;alert(2)"),
        "the rule's text, escaped: {inc}"
    );
    assert!(inc.contains("agent:&lt;script&gt;alert(1)"), "{inc}");
    let fleet = b.get("/ui/fleet").text();
    assert!(fleet.contains("agent:&lt;script&gt;alert(1)"), "{fleet}");
    // An entity name is percent-encoded in links (no breaking out of the attribute).
    assert!(
        fleet.contains("/ui/entities/agent:%3Cscript%3Ealert%281%29%3C%2Fscript%3E"),
        "{fleet}"
    );
}

#[test]
fn a_tenant_sees_only_its_own() {
    let s = TestServer::start();
    assert_eq!(s.post_ndjson(ADMIN_KEY, &spike("agent:mine")).status, 202);
    let pending = eventually(Duration::from_secs(15), || {
        pending_actions(&s).into_iter().next()
    });
    let other = s
        .post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"other"}"#)
        .json()["admin_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = Browser::new(&s);
    assert_eq!(b.sign_in(&other).status, 303);
    assert!(!b.get("/ui/fleet").text().contains("agent:mine"));
    assert!(!b.get("/ui/approvals").text().contains("agent:mine"));
    let inc = pending["incident"].as_str().unwrap();
    assert_eq!(b.get(&format!("/ui/incidents/{inc}")).status, 404);
    assert_eq!(b.get("/ui/entities/agent:mine").status, 404);
    // Their token cannot answer this tenant's action.
    let csrf = b.csrf("/ui/");
    let id = pending["id"].as_str().unwrap();
    let r = b.post(&format!("/ui/actions/{id}/approve"), &[("csrf", &csrf)]);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(pending_actions(&s).len(), 1);
}

/// First paint with 10,000 entities: the fleet page is one server-side page of 100 rows,
/// so its time and weight do not grow with the fleet. Printed for BENCHMARKS.md; the bound
/// asserted here is loose (a debug build on a shared machine), the figures there are release.
#[test]
fn the_fleet_page_stays_small_and_fast_with_ten_thousand_entities() {
    let s = TestServer::start();
    let n = 10_000;
    let mut body = String::new();
    for i in 0..n {
        body.push_str(&format!(
            "{{\"entity\":\"host:h{i:05}\",\"kind\":\"vitals\",\"metrics\":{{\"cpu\":{}}}}}\n",
            i % 7
        ));
        if body.len() > 512 << 10 {
            assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
            body.clear();
        }
    }
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
    eventually(Duration::from_secs(60), || {
        let v = s.get("/v1/entities?limit=1", ADMIN_KEY).json();
        let total: u64 = v["counts"]
            .as_object()
            .map(|m| m.values().filter_map(|c| c.as_u64()).sum())
            .unwrap_or(0);
        (total >= n).then_some(())
    });
    let mut b = Browser::new(&s);
    b.sign_in(ADMIN_KEY);
    for (path, rows) in [("/ui/fleet", 100), ("/ui/", 0)] {
        let mut times = Vec::new();
        let mut weight = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let r = b.get(path);
            times.push(t.elapsed());
            assert_eq!(r.status, 200);
            weight = r.body.len();
            if rows > 0 {
                assert_eq!(r.text().matches("<tr class=\"row").count(), rows);
            }
        }
        times.sort();
        let median = times[times.len() / 2];
        println!("{path}: median {median:?} over 5, {weight} bytes");
        assert!(weight < 64 << 10, "{path}: {weight} bytes");
        assert!(median < Duration::from_secs(2), "{path}: {median:?}");
    }
    let fleet = b.get("/ui/fleet").text();
    assert!(fleet.contains("rel=\"next\""), "a next page link");
    assert!(fleet.contains("healthy (10000)") || fleet.contains("initializing (10000)"));
}

#[test]
fn the_response_editor_shows_validation_errors_inline_and_rolls_back() {
    let s = TestServer::start();
    let mut b = Browser::new(&s);
    b.sign_in(ADMIN_KEY);
    let r = b.get("/ui/response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("token-explosion"),
        "the global playbooks are listed"
    );
    let edit = "/ui/response/edit?doc=playbooks&name=mine";
    let page = b.get(edit);
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("No stored version."));
    let csrf = csrf_of(&page.text());
    let save = |b: &mut Browser, text: &str| {
        b.post(
            "/ui/response/edit",
            &[
                ("csrf", &csrf),
                ("doc", "playbooks"),
                ("name", "mine"),
                ("text", text),
            ],
        )
    };
    let bad = "- id: mine\n  bogus: <b>1</b>\n";
    let r = save(&mut b, bad);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_page_headers(&r);
    let html = r.text();
    assert!(html.contains("id=\"doc-errors\""), "{html}");
    assert!(html.contains("unknown field `bogus`"), "{html}");
    assert!(html.contains("tenant&#x2f;mine.yml:2"), "file:line: {html}");
    assert!(
        html.contains("bogus: &lt;b&gt;1&lt;&#x2f;b&gt;"),
        "the text as sent: {html}"
    );
    assert_eq!(s.get("/v1/playbooks/mine/versions", ADMIN_KEY).status, 404);

    let good = |id: &str| {
        format!(
            "- id: {id}\n  trigger:\n    kinds: [token_spike]\n  steps:\n    - action: notify\n      params: {{channel: ops}}\n"
        )
    };
    for id in ["mine-a", "mine-b"] {
        let r = save(&mut b, &good(id));
        assert_eq!(r.status, 303, "{}", r.text());
    }
    let page = b.get(edit).text();
    assert!(
        page.contains("mine-b") && page.contains("Roll back to 1"),
        "{page}"
    );
    let r = b.post(
        "/ui/response/rollback",
        &[
            ("csrf", &csrf),
            ("doc", "playbooks"),
            ("name", "mine"),
            ("version", "1"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let doc = s.get("/v1/playbooks/mine", ADMIN_KEY).json();
    assert!(doc["text"].as_str().unwrap().contains("mine-a"), "{doc}");
    assert_eq!(doc["rollback_of"], 1, "{doc}");

    // The policy is TOML; its errors are inline too.
    let r = b.post(
        "/ui/response/edit",
        &[
            ("csrf", &csrf),
            ("doc", "policy"),
            ("text", "approvers = \"many\""),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("id=\"doc-errors\""));

    // An analyst reads but cannot save.
    let analyst = s
        .post_json("/v1/keys", ADMIN_KEY, r#"{"role":"analyst"}"#)
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut a = Browser::new(&s);
    a.sign_in(&analyst);
    let page = a.get(edit).text();
    assert!(
        page.contains(" readonly") && !page.contains("Save a new version"),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let r = a.post(
        "/ui/response/edit",
        &[
            ("csrf", &csrf),
            ("doc", "playbooks"),
            ("name", "mine"),
            ("text", &good("x")),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.text());
}
