"""Checks real objects against /openapi.json: the part schemathesis cannot reach.

Generated ids are never those of real findings, incidents or actions, so schemathesis sees
404s on the item routes and empty lists where the demo has not yet produced anything. This
walks a running server (started with --demo by .ci/schemathesis): every list, then the item
routes with the ids the lists return, then the work on an incident (ack, assign, note,
resolve, post-mortem, reopen), and validates each answer's status and body against the
document. Exit status 1 on any mismatch.

Usage: python openapi-objects.py BASE_URL KEY
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import jsonschema_rs  # installed with schemathesis

BASE, KEY = sys.argv[1], sys.argv[2]
DOC = None
problems = []
checked = 0


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + KEY)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def check(method, template, path, body=None):
    """Calls `path` and validates the answer against `template`'s operation; returns JSON."""
    global checked
    status, ctype, raw = call(method, path, body)
    checked += 1
    op = DOC["paths"][template][method.lower()]
    resp = op["responses"].get(str(status))
    if resp is None:
        problems.append(f"{method} {path}: status {status} is not documented")
        return None
    if status == 204:
        return None
    media = ctype.split(";")[0].strip()
    content = resp.get("content", {})
    if media not in {m.split(";")[0] for m in content}:
        problems.append(f"{method} {path}: content type {ctype} is not documented for {status}")
        return None
    if media != "application/json":
        return None
    schema = dict(next(v["schema"] for m, v in content.items() if m.startswith(media)))
    schema["components"] = DOC["components"]
    value = json.loads(raw)
    for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(value):
        problems.append(f"{method} {path} [{status}] at {list(e.instance_path)}: {e.message[:300]}")
    return value


def q(s):
    return urllib.parse.quote(s, safe="")


def main():
    global DOC
    DOC = json.loads(call("GET", "/openapi.json")[2])
    # The demo's first attack comes within seconds; wait for an incident to work on.
    incidents = []
    for _ in range(60):
        incidents = (check("GET", "/v1/incidents", "/v1/incidents") or {}).get("items", [])
        if incidents:
            break
        time.sleep(1)
    if not incidents:
        problems.append("the demo produced no incident within a minute: nothing to check")
    lists = [
        "/v1/findings", "/v1/actions", "/v1/entities", "/v1/assets", "/v1/audit",
        "/v1/audit/verify", "/v1/notifications", "/v1/rules", "/v1/playbooks", "/v1/policy",
        "/v1/policy/versions", "/v1/keys", "/v1/tenants", "/v1/models", "/v1/review-queue",
        "/v1/web-profiles", "/v1/web-profiles/export", "/healthz", "/readyz",
    ]
    got = {p: check("GET", p, p) for p in lists}
    check("GET", "/v1/blocklist", "/v1/blocklist?format=json")
    for f in (got["/v1/findings"] or {}).get("items", [])[:5]:
        check("GET", "/v1/findings/{id}", "/v1/findings/" + q(f["id"]))
    for a in (got["/v1/actions"] or {}).get("items", [])[:5]:
        check("GET", "/v1/actions/{id}", "/v1/actions/" + q(a["id"]))
    for e in (got["/v1/entities"] or {}).get("items", [])[:5]:
        check("GET", "/v1/entities/{entity}", "/v1/entities/" + q(e["entity"]))
        check("GET", "/v1/entities/{entity}/verdict", f"/v1/entities/{q(e['entity'])}/verdict")
    for r in (got["/v1/rules"] or {}).get("items", [])[:2]:
        name = r["file"].rsplit("/", 1)[-1].split(".")[0]
        check("GET", "/v1/rules/{name}", f"/v1/rules/{q(name)}?scope=global")
    for i in incidents[:3]:
        check("GET", "/v1/incidents/{id}", "/v1/incidents/" + q(i["id"]))
    if incidents:
        i = q(incidents[0]["id"])
        for verb, body in [("ack", {}), ("assign", {"to": "k-ci"}), ("notes", {"text": "seen"}),
                           ("resolve", {"resolution": "mitigated", "root_cause": "ci"})]:
            check("POST", "/v1/incidents/{id}/" + verb, f"/v1/incidents/{i}/{verb}", body)
        check("GET", "/v1/incidents/{id}/postmortem", f"/v1/incidents/{i}/postmortem")
        check("POST", "/v1/incidents/{id}/reopen", f"/v1/incidents/{i}/reopen", {})
    check("POST", "/v1/entities/heal-all", "/v1/entities/heal-all", {})
    check("PUT", "/v1/assets/{entity}", "/v1/assets/host%3Aci", {"criticality": 4, "tags": ["ci"]})
    key = check("POST", "/v1/keys", "/v1/keys", {"role": "ingest", "expires_in": "1d"})
    if key:
        check("POST", "/v1/keys/{id}/rotate", f"/v1/keys/{q(key['id'])}/rotate", {})
    check("PUT", "/v1/policy", "/v1/policy", {"approvers": 1})
    check("GET", "/v1/policy/versions/{version}", "/v1/policy/versions/1")
    print(f"openapi-objects: {checked} answers checked against /openapi.json, {len(problems)} problems")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
