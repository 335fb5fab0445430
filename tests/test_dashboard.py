"""GET /dashboard in a real browser: Debian's headless Chromium loads the page from a running
``fastctr serve`` (a real granian process fed predictions, entity-feature lookups and clicks)
and the numbers it renders are those of GET /stats fetched around it; a screenshot is saved
under the test's tmp dir."""
import re
import shutil
import subprocess
import threading
from html import unescape

import pytest
from service_models import LABELS, ROWS, model_file, trained
from test_service_server import serving

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: tiles whose figure does not move while no click comes in: equal to /stats, as rendered
STEADY = {"tile-ctr": ("quality.ctr", 4), "tile-auc": ("quality.auc", 4),
          "tile-calibration": ("quality.calibration", 3), "tile-cache": ("features.hit_rate", 3),
          "tile-version": ("model_version", None)}
#: tiles measured over the last seconds of traffic: between /stats before and after, loosely
MOVING = {"tile-qps": "qps", "tile-p99": "latency_ms.p99_ms", "tile-cpu": "cpu.percent"}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "the dashboard test needs Debian's chromium (.ci/run installs it)"
    return found


def browse(url: str, profile, *extra: str) -> str:
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           "--virtual-time-budget=5000", *extra, url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def field(doc: dict, path: str):
    for key in path.split("."):
        doc = doc[key]
    return doc


def tiles(dom: str) -> dict[str, tuple[str, str]]:
    """id -> (data-value, the text shown) of every tile in the dumped DOM."""
    found = re.findall(r'<div class="tile[^"]*" id="(tile-[a-z0-9]+)" data-value="([^"]*)">'
                       r'<div class="name">[^<]*</div><div class="value">([^<]*)</div>', dom)
    return {name: (unescape(value), unescape(text)) for name, value, text in found}


def feed(client) -> None:
    """Predictions (a third naming a stored entity, found or not; each unit its own arm) and
    each one's click."""
    assert client.put("/features/user/u1", json={"features": {"C20": "a1b2c3d4"}}).status_code == 200
    for i, (row, label) in enumerate(zip(ROWS[:500], LABELS[:500])):
        body = {"features": row, **({"entities": {"user": f"u{i % 2}"}} if i % 3 == 0 else {})}
        rid = client.post("/predict", json=body).json()["request_id"]
        assert client.post("/feedback", json={"request_id": rid, "click": int(label)}).status_code == 200


def test_dashboard_renders_stats_in_chromium(tmp_path):
    path = model_file(tmp_path)
    challenger = model_file(tmp_path, trained(rows=150), "challenger.fctr")
    with serving(path, "--learn", "--ab", f"{challenger}:0.3") as client:
        page = client.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        feed(client)
        stop = threading.Event()

        def traffic():  # predictions only while the browser looks: QPS and p99 stay live
            while not stop.wait(0.02):
                client.post("/predict", json={"features": ROWS[600 - 1]})

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            stop.wait(1.5)  # a telemetry tick or two: QPS over a span
            before = client.get("/stats").json()
            url = str(client.base_url) + "/dashboard"
            dom = browse(url, tmp_path / "profile", "--dump-dom")
            after = client.get("/stats").json()
            shot = tmp_path / "dashboard.png"
            browse(url, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,900")
        finally:
            stop.set()
            worker.join()
    shown = tiles(dom)
    assert set(shown) == {*STEADY, *MOVING}, dom[:3000]
    assert before["quality"]["rows"] == 500 and 0 < before["quality"]["clicks"] < 500
    assert before["features"]["hit_rate"] is not None and 0 < before["features"]["hit_rate"] < 1
    for name, (path_, digits) in STEADY.items():
        want = field(after, path_)
        assert field(before, path_) == want, name  # no click came in while the page loaded
        value, text = shown[name]
        if digits is None:
            assert value == text == str(want), name
        else:
            assert float(value) == pytest.approx(want, rel=1e-12), name
            assert text == f"{want:.{digits}f}", name
    for name, path_ in MOVING.items():
        low, high = sorted((field(before, path_), field(after, path_)))
        value, text = shown[name]
        assert float(text) == pytest.approx(float(value), abs=0.051), name  # as rendered
        assert 0.5 * low - 1 <= float(value) <= 1.5 * high + 1, (name, value, low, high)
    arms = {a["arm"]: a for a in after["ab"]["arms"]}
    assert set(arms) == {"control", "challenger"} and before["ab"]["arms"] == after["ab"]["arms"]
    for name, arm in arms.items():
        row = re.search(rf'<tr data-arm="{name}">(.*?)</tr>', dom).group(1)
        cells = [unescape(c) for c in re.findall(r"<td>([^<]*)</td>", row)]
        assert cells[:5] == [name, f"{arm['weight']:.2f}", str(arm["impressions"]),
                             str(arm["clicks"]), f"{arm['ctr']:.4f}"], cells
    assert sum(a["impressions"] for a in arms.values()) == 500
    assert dom.count('class="bucket"') == sum(b["rows"] > 0 for b in after["quality"]["buckets"]) > 3
    assert re.search(r'<div id="status"[^>]*>updated ', dom), "the page did not read /stats"
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a rendered page, not a blank one
