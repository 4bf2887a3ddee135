"""The dashboard end to end in headless Chromium (Debian's), driven by Playwright (run by
.ci/ui-e2e). Starts the real binary on a fresh data dir and plays an operator's session:
sign in; events arrive that open an incident needing approval, and it appears live (no
reload); open the incident; Approve and see the entity's state change; a second incident:
Reject, then Heal now; verify the audit chain; the approvals inbox at phone width.
Screenshots of every page go to target/screenshots/. Any failed expectation fails the run.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from playwright.sync_api import expect, sync_playwright

ADMIN_KEY = "ab_e2e_bootstrap_admin_key_0123456789"
SHOTS = os.environ.get("SCREENSHOTS", "target/screenshots")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def start_server(data_dir):
    proc = subprocess.Popen(
        [os.environ["ANTIBODY_BIN"], "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        env={**os.environ, "ANTIBODY_ADMIN_KEY": ADMIN_KEY, "ANTIBODY_LOG": "warn"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    for line in proc.stderr:
        m = re.search(r"listening on (\S+)", line)
        if m:
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, "http://" + m.group(1)
        if time.time() > deadline:
            break
    proc.kill()
    sys.exit("the server did not start")


def api(base, method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(base + path, method=method, data=body)
    req.add_header("Authorization", "Bearer " + ADMIN_KEY)
    if body is not None:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def spike(base, entity):
    """20 ordinary vitals, then a token explosion: a rate limit waiting for approval."""
    lines = [
        json.dumps({"entity": entity, "kind": "vitals", "metrics": {"tokens": 1000 + i % 3 * 10}})
        for i in range(20)
    ]
    lines.append(json.dumps({"entity": entity, "kind": "vitals", "metrics": {"tokens": 500000}}))
    api(base, "POST", "/v1/events", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")


def entity_state(base, entity):
    return api(base, "GET", "/v1/entities/" + urllib.request.quote(entity, safe=":"))["state"]


def wait_for(what, f, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = f()
        if v:
            return v
        time.sleep(0.1)
    sys.exit("timed out waiting for " + what)


def pending(base, entity):
    """Waits until an action against `entity` waits for approval."""
    wait_for(
        "an approval for " + entity,
        lambda: any(a["target"] == entity for a in api(base, "GET", "/v1/actions?status=pending_approval")["items"]),
    )


def first_paint(base, page, n=10_000):
    """First contentful paint and page weight of the fleet page and the overview with `n`
    entities: five loads each, medians printed (BENCHMARKS.md records them)."""
    batch = []
    for i in range(n):
        batch.append(json.dumps({"entity": f"host:h{i:05}", "kind": "vitals", "metrics": {"cpu": i % 7}}))
        if len(batch) == 2000 or i == n - 1:
            api(base, "POST", "/v1/events", ("\n".join(batch) + "\n").encode(), "application/x-ndjson")
            batch = []
    wait_for(
        f"{n} entities",
        lambda: sum(api(base, "GET", "/v1/entities?limit=1")["counts"].values()) >= n,
        timeout=120,
    )
    out = {}
    for path in ["/ui/fleet", "/ui/"]:
        paints, weight = [], 0
        for _ in range(5):
            page.goto(base + path)
            page.wait_for_load_state("load")
            fcp = page.evaluate(
                """() => new Promise(done => {
                    const get = () => performance.getEntriesByName('first-contentful-paint')[0];
                    const poll = () => get() ? done(get().startTime) : setTimeout(poll, 10);
                    poll();
                })"""
            )
            paints.append(fcp)
            weight = page.evaluate(
                "performance.getEntriesByType('navigation')[0].decodedBodySize"
                " + performance.getEntriesByType('resource')"
                ".filter(r => r.initiatorType !== 'fetch' && r.initiatorType !== 'other')"
                ".reduce((a, r) => a + r.decodedBodySize, 0)"
            )
        paints.sort()
        out[path] = (paints[2], weight)
        print(f"first paint {path} with {n} entities: median {paints[2]:.0f} ms "
              f"(min {paints[0]:.0f}, max {paints[-1]:.0f}), {weight} bytes with script and css")
    return out


def shot(page, name):
    """Saves a screenshot, after checking the page's form fields all have labels."""
    unlabeled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(el => !el.labels || el.labels.length === 0).map(el => el.outerHTML)"""
    )
    assert not unlabeled, f"{name}: form fields without a label: {unlabeled}"
    page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    data_dir = tempfile.mkdtemp(prefix="antibody-ui-e2e-")
    proc, base = start_server(data_dir)
    errors = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))

            # Sign in.
            page.goto(base + "/")
            expect(page.get_by_label("API key")).to_have_attribute("type", "password")
            shot(page, "01-sign-in")
            page.get_by_label("API key").fill(ADMIN_KEY)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(base + "/ui/")
            assert page.evaluate("document.cookie") == "", "the session cookie is HttpOnly"
            assert page.evaluate("localStorage.length") == 0
            expect(page.locator("#live")).to_have_text("live", timeout=10000)

            # An attack arrives; the overview shows it without a reload.
            page.evaluate("window.__marker = 1")
            spike(base, "agent:e2e-1")
            expect(page.locator("#pending-count")).to_have_text("1", timeout=20000)
            expect(page.locator("#feed li").first).to_be_visible()
            assert page.evaluate("window.__marker") == 1, "updated live, not reloaded"
            expect(page.get_by_role("button", name="Approve", exact=True)).to_be_visible()
            shot(page, "02-overview")

            # Open the incident; Approve; the entity's state changes.
            page.get_by_role("link", name=re.compile(r"^i-")).first.click()
            page.wait_for_url(re.compile(r"/ui/incidents/i-"))
            expect(page.get_by_role("heading", name="Plan")).to_be_visible()
            expect(page.locator(".finding svg.bar").first).to_be_visible()
            shot(page, "03-incident")
            before = entity_state(base, "agent:e2e-1")
            page.locator(".action").get_by_role("button", name="Approve", exact=True).click()
            after = wait_for("the state to change", lambda: (s := entity_state(base, "agent:e2e-1")) != before and s)
            page.get_by_role("link", name="agent:e2e-1").first.click()
            page.wait_for_url(re.compile(r"/ui/entities/"))
            expect(page.locator("h1 .state")).to_have_text(
                re.compile(r"healing|probation|healthy"), timeout=10000
            )
            expect(page.locator("svg.chart").first).to_be_visible()
            shot(page, "04-entity")
            print(f"approve: agent:e2e-1 {before} -> {after}")

            # A second incident: Reject in the inbox, then Heal now.
            spike(base, "agent:e2e-2")
            pending(base, "agent:e2e-2")
            page.goto(base + "/ui/approvals")
            expect(page.get_by_role("button", name="Reject", exact=True).first).to_be_visible(timeout=20000)
            shot(page, "05-approvals")
            page.get_by_role("button", name="Reject", exact=True).first.click()
            page.wait_for_url(base + "/ui/approvals")
            expect(page.get_by_text("Nothing waits for approval.")).to_be_visible()
            rejected = api(base, "GET", "/v1/actions?status=rejected")["items"]
            assert len(rejected) == 1, rejected
            state = entity_state(base, "agent:e2e-2")
            assert state in ("draining", "quarantined"), state
            page.goto(base + "/ui/entities/agent:e2e-2")
            page.get_by_role("button", name="Heal now").click()
            expect(page.locator("h1 .state")).to_have_text(re.compile(r"healing|probation"), timeout=10000)
            print(f"reject + heal: agent:e2e-2 {state} -> {entity_state(base, 'agent:e2e-2')}")

            # The fleet, with a filter.
            page.goto(base + "/ui/fleet")
            page.get_by_label("Name contains").fill("e2e-2")
            page.get_by_role("button", name="Filter").click()
            expect(page.locator("table.fleet tbody tr")).to_have_count(1)
            page.goto(base + "/ui/fleet")
            shot(page, "06-fleet")

            # Edit a playbook with an error: the error is shown inline, the text kept.
            page.goto(base + "/ui/response")
            shot(page, "11-response")
            page.get_by_label("Document name").fill("e2e")
            page.get_by_role("button", name="Open the editor").click()
            page.get_by_label("YAML").fill("- id: e2e\n  bogus: 1\n")
            seen = len(errors)
            page.get_by_role("button", name="Save a new version").click()
            expect(page.locator("#doc-errors")).to_contain_text("unknown field `bogus`")
            # The refused document comes back as a 400 page, which Chromium logs: expected.
            errors[seen:] = [e for e in errors[seen:] if "status of 400" not in e]
            expect(page.get_by_label("YAML")).to_have_value("- id: e2e\n  bogus: 1\n")
            shot(page, "12-playbook-error")
            page.get_by_label("YAML").fill(
                "- id: e2e\n  trigger:\n    kinds: [sqli]\n  steps:\n    - action: notify\n"
            )
            page.get_by_role("button", name="Save a new version").click()
            expect(page.locator("#doc-errors")).to_have_count(0)
            expect(page.get_by_role("cell", name="1", exact=True)).to_be_visible()

            # The audit chain verifies.
            page.goto(base + "/ui/audit")
            page.get_by_role("button", name="Verify the chain").click()
            expect(page.locator("#verify-result")).to_contain_text("Chain verified")
            shot(page, "07-audit")
            page.goto(base + "/ui/notifications")
            shot(page, "08-notifications")
            page.goto(base + "/ui/incidents")
            shot(page, "09-incidents")
            page.goto(base + "/ui/models")
            shot(page, "13-models")

            # Phone width: the inbox fits without sideways scrolling; keyboard reaches Sign out.
            spike(base, "agent:e2e-3")
            pending(base, "agent:e2e-3")
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(base + "/ui/approvals")
            expect(page.get_by_role("button", name="Approve", exact=True).first).to_be_visible(timeout=20000)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the approvals page is {width}px wide at phone width"
            shot(page, "10-approvals-phone")
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Skip to content"

            # 10,000 entities: the fleet page is one server-side page, painted fast.
            page.set_viewport_size({"width": 1280, "height": 900})
            for path, (fcp, weight) in first_paint(base, page).items():
                # Loose bounds: CI runs a debug build on a shared machine (release figures
                # and the method: BENCHMARKS.md).
                assert fcp < 1500, f"{path}: first paint {fcp:.0f} ms"
                assert weight < 100_000, f"{path}: {weight} bytes"

            # Sign out.
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(base + "/")
            page.goto(base + "/ui/")
            page.wait_for_url(base + "/")
            browser.close()
    finally:
        proc.kill()
        proc.wait()
    if errors:
        sys.exit("browser errors (CSP violations included):\n" + "\n".join(errors))
    print("ui e2e: ok; screenshots in " + SHOTS)


if __name__ == "__main__":
    main()
