"""The service in process (FastAPI's TestClient): predict in its three row forms and in
batches, feedback learned exactly once, the model's lifecycle, entity features, and a 4xx
naming the field for every client mistake."""
import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import serving
from service_models import LABELS, MODELS, ROWS, line_of, model_file, positional_of, trained

from fastctr import load
from fastctr.service import create_app
from fastctr.service.app import Settings
from fastctr.service.served import ServedModel
from fastctr.service.stores import Impression

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def model():
    return trained()


@pytest.fixture(scope="module")
def served(tmp_path_factory, model):
    """A non-learning service of ``model`` (shared: predictions change nothing)."""
    path = model_file(tmp_path_factory.mktemp("served"), model)
    with TestClient(create_app(path, reload_poll=0)) as client:
        yield client


def learning_client(path, **kw):
    return TestClient(create_app(path, learn=True, **{"reload_poll": 0, **kw}))


# -- predict ---------------------------------------------------------------------------------

def test_three_row_forms_score_as_predict_one(served, model):
    for row in ROWS[400:420]:
        want = model.predict_one(row)
        for body in ({"features": row}, {"line": line_of(row)}, positional_of(row)):
            answer = served.post("/predict", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["ctr_probability"] == want


def test_answer_carries_request_id_and_version(served):
    given_id = served.post("/predict", json={"features": ROWS[0], "request_id": "r-1"}).json()
    assert given_id["request_id"] == "r-1"
    made = served.post("/predict", json={"features": ROWS[0]}).json()
    assert len(made["request_id"]) == 32 and int(made["request_id"], 16) >= 0
    info = served.get("/model").json()
    assert made["model_version"] == info["version"] == info["checksum"]
    assert info["class"] == "FTRLClassifier" and info["rows_learned"] == 400


_values = st.one_of(st.none(), st.integers(-5, 10**6), st.floats(-1e6, 1e6),
                    st.text(max_size=12))
_row = st.fixed_dictionaries({}, optional={
    **{f"I{i}": st.one_of(st.none(), st.integers(-5, 10**6), st.floats(-1e6, 1e6))
       for i in range(1, 14)},
    **{f"C{i}": st.one_of(st.none(), st.text(max_size=12)) for i in range(1, 27)}})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=_row)
def test_predict_equals_predict_one_for_random_rows(served, model, row):
    answer = served.post("/predict", json={"features": row})
    assert answer.status_code == 200, answer.text
    assert answer.json()["ctr_probability"] == model.predict_one(row)


def test_batch_scores_as_predict_proba(served, model):
    rows = ROWS[400:600]
    answer = served.post("/predict", json={"rows": [{"features": r} for r in rows]}).json()
    assert np.allclose(answer["predictions"], model.predict_proba(rows)[:, 1], rtol=0, atol=1e-12)
    assert len(set(answer["request_ids"])) == len(rows)
    mixed = [{"features": rows[0]}, {"line": line_of(rows[1])}, positional_of(rows[2])]
    answer = served.post("/predict", json={"rows": mixed}).json()
    assert np.allclose(answer["predictions"], [model.predict_one(r) for r in rows[:3]], atol=1e-12)


def test_batch_of_lines_scores_as_predict_one(served, model):
    """Lines go through the compiled reader in one pass, or row by row where the reader
    would split or skip one (an empty line, a newline or carriage return inside)."""
    lines = [line_of(r) for r in ROWS[400:600]]
    for batch in (lines, lines[:5] + [""] + lines[5:9], ["\t\t\t5\n7", "3\r"] + lines[:3]):
        answer = served.post("/predict", json={"rows": [{"line": line} for line in batch]})
        if any("\n" in line for line in batch):  # one row's line holds two: refused, named
            assert answer.status_code == 422 and answer.json()["field"] == "rows[0].line"
            continue
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [model.predict_one(line) for line in batch]
    bad = served.post("/predict", json={"rows": [{"line": lines[0]}, {"line": "x\ty"}]})
    assert bad.status_code == 422 and bad.json()["field"] == "rows[1].line"


TSV = {"content-type": "text/tab-separated-values"}


def test_tab_separated_body_scores_as_predict_one(served, model):
    """A body of raw lines (no JSON) is hashed by the compiled reader straight from its
    bytes: blank lines skipped, CRLF accepted, a bad line named, the batch limit kept."""
    lines = [line_of(r) for r in ROWS[400:600]]
    text = "\n".join(lines[:50]) + "\n\n" + "\r\n".join(lines[50:]) + "\r\n"
    answer = served.post("/predict", content=text.encode(), headers=TSV)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["predictions"] == [model.predict_one(line) for line in lines]
    assert len(set(doc["request_ids"])) == 200 and doc["model_version"] == \
        served.get("/model").json()["version"]
    bad = served.post("/predict", content=f"{lines[0]}\n{lines[1]}\nx\ty\n".encode(),
                      headers={"content-type": "text/tab-separated-values; charset=utf-8"})
    assert bad.status_code == 422 and "line 3" in bad.json()["detail"], bad.text
    empty = served.post("/predict", content=b"\n\n", headers=TSV)
    assert empty.status_code == 422 and "no line" in empty.json()["detail"]


def test_tab_separated_rows_are_kept_for_feedback(tmp_path, model):
    path = model_file(tmp_path, model)
    reference = load(path)
    rows, labels = ROWS[400:440], LABELS[400:440]
    with learning_client(path, max_batch=40) as client:
        body = "\n".join(line_of(r) for r in rows).encode()
        ids = client.post("/predict", content=body, headers=TSV).json()["request_ids"]
        over = client.post("/predict", content=body + b"\n" + body, headers=TSV)
        assert over.status_code == 413
        batch = [{"request_id": rid, "click": int(c)} for rid, c in zip(ids, labels)]
        assert client.post("/feedback", json={"feedback": batch}).json()["learned"] == 40
        reference.partial_fit(rows, labels)
        np.testing.assert_array_equal(client.app.state.holder.current.model.zn_, reference.zn_)


@pytest.mark.parametrize("kind", ["fm", "ffm"])
def test_factorization_machines_serve_and_learn(tmp_path, kind):
    model = trained(MODELS[kind], rows=300)
    path = model_file(tmp_path, model)
    with learning_client(path) as client:
        for row in ROWS[300:310]:
            assert client.post("/predict", json={"features": row}).json()["ctr_probability"] \
                == model.predict_one(row)
        answer = client.post("/predict", json={"features": ROWS[310]}).json()
        assert client.post("/feedback", json={"request_id": answer["request_id"],
                                              "click": 1}).status_code == 200
        model.partial_fit([ROWS[310]], [1])
        assert client.post("/predict", json={"line": line_of(ROWS[311])}).json()[
            "ctr_probability"] == pytest.approx(model.predict_one(ROWS[311]), abs=1e-12)


@pytest.mark.parametrize("kind", ["ftrl", "fm", "ffm"])
def test_scorer_files_serve_but_cannot_learn(tmp_path, model, kind):
    scorer = (model if kind == "ftrl" else trained(MODELS[kind], rows=300)).to_scorer("float32")
    path = tmp_path / "scorer.fctr"
    scorer.save(path)
    with TestClient(create_app(path, reload_poll=0)) as client:
        for row in ROWS[400:410]:
            assert client.post("/predict", json={"features": row}).json()["ctr_probability"] \
                == scorer.predict_one(row)
        assert client.get("/model").json()["class"] == type(scorer).__name__
        for form in ({"features": r} for r in ROWS[:50]), ({"line": line_of(r)} for r in ROWS[:50]):
            batch = client.post("/predict", json={"rows": list(form)})
            assert np.allclose(batch.json()["predictions"],
                               [scorer.predict_one(r) for r in ROWS[:50]], rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="which cannot learn"):
        create_app(path, learn=True)


# -- feedback --------------------------------------------------------------------------------

def test_feedback_changes_the_next_prediction(tmp_path):
    with learning_client(model_file(tmp_path)) as client:
        row = ROWS[450]
        first = client.post("/predict", json={"features": row}).json()
        fed = client.post("/feedback", json={"request_id": first["request_id"], "click": 1})
        assert fed.status_code == 200 and fed.json()["learned"] == 1
        second = client.post("/predict", json={"features": row}).json()
        assert second["ctr_probability"] > first["ctr_probability"]
        assert second["model_version"] == first["model_version"] + "+1"


def test_served_model_equals_partial_fit_of_the_same_rows(tmp_path, model):
    """N predictions, their feedback in another order (singles and a batch): the served
    model is the model that partial_fit those rows in the feedback's order."""
    path = model_file(tmp_path, model)
    reference = load(path)
    rows, labels = ROWS[400:460], LABELS[400:460]
    with learning_client(path) as client:
        ids = [client.post("/predict", json={"features": r}).json()["request_id"] for r in rows]
        order = np.random.default_rng(5).permutation(len(rows))
        for i in order[:20]:
            assert client.post("/feedback", json={"request_id": ids[i],
                                                  "click": int(labels[i])}).status_code == 200
        batch = [{"request_id": ids[i], "click": bool(labels[i])} for i in order[20:]]
        answer = client.post("/feedback", json={"feedback": batch}).json()
        assert answer["learned"] == 40 and {r["status"] for r in answer["results"]} == {200}
        for i in order[:20]:
            reference.partial_fit([rows[i]], [labels[i]])
        reference.partial_fit([rows[i] for i in order[20:]], labels[order[20:]])
        served = client.app.state.holder.current.model
        np.testing.assert_array_equal(served.zn_, reference.zn_)
        assert served.n_rows_seen_ == reference.n_rows_seen_ == 460
        assert client.get("/model").json()["rows_learned_online"] == 60


def test_a_kept_row_is_its_impression_encoded(tmp_path, model):
    """What a single /predict keeps (encoded straight from the hashed bytes) decodes to the
    Impression of that row, for dicts and lines alike."""
    served = ServedModel.load(model_file(tmp_path, model), learn=True)
    for row in ROWS[400:450]:
        for raw in (row, line_of(row)):
            encoded = served.encoded_impression(raw, 0.25, "challenger")
            assert Impression.from_bytes(encoded) == served.impression(raw, 0.25, "challenger")


def test_each_impression_is_learned_once(tmp_path):
    with learning_client(model_file(tmp_path)) as client:
        rid = client.post("/predict", json={"features": ROWS[0]}).json()["request_id"]
        assert client.post("/feedback", json={"request_id": rid, "click": 0}).status_code == 200
        again = client.post("/feedback", json={"request_id": rid, "click": 1})
        assert again.status_code == 409 and again.json()["field"] == "request_id"
        unknown = client.post("/feedback", json={"request_id": "nope", "click": 1})
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
        batch = client.post("/feedback", json={"feedback": [{"request_id": rid, "click": 1},
                                                            {"request_id": "nope", "click": 0}]})
        assert [r["status"] for r in batch.json()["results"]] == [409, 404]
        assert batch.json()["learned"] == 0
        assert client.app.state.holder.current.learned == 1


def test_expired_impressions_are_404(tmp_path):
    with learning_client(model_file(tmp_path), impression_ttl=0.05) as client:
        rid = client.post("/predict", json={"features": ROWS[0]}).json()["request_id"]
        time.sleep(0.1)
        assert client.post("/feedback", json={"request_id": rid, "click": 1}).status_code == 404


def test_impressions_are_bounded(tmp_path):
    with learning_client(model_file(tmp_path), max_impressions=10) as client:
        ids = [client.post("/predict", json={"features": r}).json()["request_id"]
               for r in ROWS[:15]]
        assert client.get("/health").json()["impressions"] == 10
        assert client.post("/feedback", json={"request_id": ids[0], "click": 1}).status_code == 404
        assert client.post("/feedback", json={"request_id": ids[-1], "click": 1}).status_code == 200


def test_reused_request_id_is_409(tmp_path):
    with learning_client(model_file(tmp_path)) as client:
        assert client.post("/predict", json={"features": ROWS[0], "request_id": "x"}).status_code == 200
        again = client.post("/predict", json={"features": ROWS[1], "request_id": "x"})
        assert again.status_code == 409 and again.json()["field"] == "request_id"


def test_feedback_without_learning_is_403(served):
    answer = served.post("/feedback", json={"request_id": "a", "click": 1})
    assert answer.status_code == 403 and "--learn" in answer.json()["detail"]


# -- lifecycle -------------------------------------------------------------------------------

def test_reload_swaps_in_the_new_file(tmp_path, model):
    path = model_file(tmp_path, model)
    other = trained(rows=200)
    with TestClient(create_app(path, reload_poll=0)) as client:
        before = client.get("/model").json()
        other.save(path)
        info = client.post("/model/reload").json()
        assert info["version"] != before["version"] and info["rows_learned"] == 200
        assert client.post("/predict", json={"features": ROWS[500]}).json()["ctr_probability"] \
            == other.predict_one(ROWS[500])


def test_file_change_is_reloaded_and_a_bad_file_degrades(tmp_path, model):
    path = model_file(tmp_path, model)
    with TestClient(create_app(path, reload_poll=0.05)) as client:
        version = client.get("/model").json()["version"]
        trained(rows=100).save(path)
        deadline = time.monotonic() + 10
        while client.get("/model").json()["version"] == version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/model").json()["rows_learned"] == 100
        path.write_bytes(path.read_bytes()[:-10])  # truncated: the old model keeps serving
        while client.get("/health").json()["status"] == "ok" and time.monotonic() < deadline:
            time.sleep(0.05)
        health = client.get("/health").json()
        assert health["status"] == "degraded" and "reload" in health["reasons"][0]
        assert client.post("/predict", json={"features": ROWS[0]}).status_code == 200
        refused = client.post("/model/reload")
        assert refused.status_code == 409 and "still serving" in refused.json()["detail"]


def test_snapshots_are_loadable_and_not_reloaded(tmp_path, model):
    path = model_file(tmp_path, model)
    with learning_client(path, snapshot_every=0.05, reload_poll=0.02) as client:
        for row, label in zip(ROWS[400:420], LABELS[400:420]):
            rid = client.post("/predict", json={"features": row}).json()["request_id"]
            client.post("/feedback", json={"request_id": rid, "click": int(label)})
        served = client.app.state.holder.current
        deadline = time.monotonic() + 10
        while load(path).n_rows_seen_ != 420 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)  # the watcher looked at the file we wrote
        assert client.app.state.holder.current is served  # our own snapshot: not reloaded
        np.testing.assert_array_equal(load(path).zn_, served.model.zn_)


def test_health_and_docs(served):
    health = served.get("/health").json()
    assert health == {**health, "status": "ok", "live": True, "ready": True, "reasons": []}
    spec = served.get("/openapi.json").json()
    for name in ("Row", "BatchRequest", "Prediction", "Feedback", "ModelInfo", "Error"):
        assert name in spec["components"]["schemas"]
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert {"$ref": "#/components/schemas/Row"} in body["schema"]["oneOf"]
    assert served.get("/docs").status_code == 200


# -- entity features -------------------------------------------------------------------------

def test_entity_features_are_merged_under_the_rows_own(served, model):
    stored = {"C20": "u17-segment", "C21": "abc", "I3": 7}
    assert served.put("/features/user/u17", json={"features": stored}).status_code == 200
    assert served.get("/features/user/u17").json()["features"] == stored
    row = {"C1": "68fd1e64", "C21": "own"}
    answer = served.post("/predict", json={"features": row, "entities": {"user": "u17"}}).json()
    assert answer["ctr_probability"] == model.predict_one({**stored, **row})
    missing = served.post("/predict", json={"features": row, "entities": {"user": "u18"}}).json()
    assert missing["ctr_probability"] == model.predict_one(row)
    stats = served.get("/health").json()["features"]
    assert stats["local_hits"] >= 2 and stats["local_misses"] >= 1
    assert served.get("/features/user/u18").status_code == 404
    bad = served.put("/features/user/u19", json={"features": {"c99": "x"}})
    assert bad.status_code == 422 and "c99" in bad.json()["detail"]


# -- client mistakes: 4xx naming the field ---------------------------------------------------

@pytest.mark.parametrize("body, status, field", [
    (b"{not json", 422, ""),
    (b"[1, 2]", 422, ""),
    (b'{"features": {"I1": 3}, "extra": 1}', 422, "extra"),
    (b'{"features": {"C1": [1]}}', 422, "features.C1"),
    (b'{"features": {"C1": true}}', 422, "features.C1"),
    (b'{"features": {"I1": "abc"}}', 422, "features.I1"),
    (b'{"features": {"c1": "x"}}', 422, "features.c1"),
    (b'{"features": {"C1": "x", "I2": 3, "I5": "x5"}}', 422, "features.I5"),
    (b'{"features": "C1=x"}', 422, "features"),
    (b'{"line": 5}', 422, "line"),
    (b'{"line": "a\\tb"}', 422, "line"),
    (b'{"features": {}, "line": ""}', 422, ""),
    (b'{}', 422, ""),
    (b'{"numerical_features": [1,2,3,4,5,6,7,8,9,10,11,12], "categorical_features": []}',
     422, "numerical_features"),
    (b'{"numerical_features": [1,2,3,4,5,6,7,8,9,10,11,12,"x"], "categorical_features": []}',
     422, "numerical_features[12]"),
    (b'{"categorical_features": []}', 422, "numerical_features"),
    (b'{"features": {}, "request_id": 7}', 422, "request_id"),
    (b'{"features": {}, "entities": ["u"]}', 422, "entities"),
    (b'{"line": "", "entities": {"user": "u"}}', 422, "entities"),
    (b'{"rows": {"features": {}}}', 422, "rows"),
    (b'{"rows": [{"features": {}}, {"features": {"C1": 1.5e400}}]}', 422, ""),
    (b'{"rows": [{"features": {}}, {"features": {"zz": 1}}]}', 422, "rows[1].features.zz"),
    (b'{"rows": [{"line": ""}, {"line": "x"}]}', 422, "rows[1].line"),
    (b'{"rows": [{"features": {}}, 3]}', 422, "rows[1]"),
    # the batch checks over all rows at once still name the row and value at fault
    (b'{"rows": [{"features": {"C1": "a"}}, {"features": {"C1": true}}]}', 422,
     "rows[1].features.C1"),
    (b'{"rows": [{"features": {"C1": "a"}}, {"features": {"C1": {"x": 1}}}]}', 422,
     "rows[1].features.C1"),
    (b'{"rows": [{"features": {"C1": "a"}}, {"features": "x"}]}', 422, "rows[1].features"),
    (b'{"rows": [{"features": {"C1": "a"}}, {"features": {}, "x": 1}]}', 422, "rows[1].x"),
    (b'{"rows": [{"line": "a"}, {"line": 5}]}', 422, "rows[1].line"),
    (b'{"rows": [], "features": {}}', 422, "features"),
])
def test_bad_predict_requests_are_4xx_naming_the_field(served, body, status, field):
    answer = served.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field and answer.json()["detail"]


def test_unknown_keys_follow_the_models_policy(tmp_path, served):
    row = {"C1": "68fd1e64", "c2": "typo"}
    strict = served.post("/predict", json={"features": row})
    assert strict.status_code == 422 and "unknown key 'c2'" in strict.json()["detail"]
    lenient = trained(unknown="ignore")
    with TestClient(create_app(model_file(tmp_path, lenient), reload_poll=0)) as client:
        answer = client.post("/predict", json={"features": row})
        assert answer.json()["ctr_probability"] == lenient.predict_one({"C1": "68fd1e64"})


def test_batch_and_body_limits_are_413(tmp_path, model):
    path = model_file(tmp_path, model)
    with TestClient(create_app(path, reload_poll=0, max_batch=5, max_body=2000)) as client:
        over = client.post("/predict", json={"rows": [{"features": {}}] * 6})
        assert over.status_code == 413 and over.json()["field"] == "rows"
        big = client.post("/predict", json={"features": {"C1": "x" * 3000}})
        assert big.status_code == 413

        def chunks():  # no content-length: refused while it is read
            for _ in range(10):
                yield b" " * 500

        assert client.post("/predict", content=chunks()).status_code == 413


@pytest.mark.parametrize("body, field", [
    ({"request_id": "a", "click": 2}, "click"),
    ({"request_id": "a", "click": 0.5}, "click"),
    ({"request_id": "a", "click": "1"}, "click"),
    ({"request_id": "a"}, "click"),
    ({"click": 1}, "request_id"),
    ({"request_id": "a", "click": 1, "p": 0.5}, "p"),
    ({"feedback": [{"request_id": "a", "click": 1}, {"request_id": "b", "click": -1}]},
     "feedback[1].click"),
])
def test_bad_feedback_is_422_naming_the_field(tmp_path, body, field):
    with learning_client(model_file(tmp_path)) as client:
        answer = client.post("/feedback", json=body)
        assert answer.status_code == 422 and answer.json()["field"] == field


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.sampled_from(
                         ["features", "line", "rows", "request_id", "click", "feedback",
                          "entities", "numerical_features", "categorical_features", "I1", "C1",
                          "zz"]) | st.text(max_size=4), inner, max_size=5),
                     max_leaves=20)


@pytest.fixture(scope="module", params=["in-process", "granian"])
def learner(request, tmp_path_factory, model):
    """A learning service: in process (ASGI), and a real ``fastctr serve`` under granian
    (RSGI, its own way of reading bodies and answering)."""
    path = model_file(tmp_path_factory.mktemp("learner"), model)
    if request.param == "granian":
        with serving(path, "--learn", "--server", "granian") as client:
            yield client
        return
    with TestClient(create_app(path, learn=True, reload_poll=0),
                    raise_server_exceptions=False) as client:
        yield client


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_json, route=st.sampled_from(["/predict", "/feedback", "/features/user/u1"]))
def test_random_bodies_never_get_a_5xx(learner, doc, route):
    body = json.dumps(doc).encode()
    method = learner.put if route.startswith("/features") else learner.post
    answer = method(route, content=body, headers={"content-type": "application/json"})
    assert answer.status_code < 500, (doc, answer.text)
    if answer.status_code >= 400:
        assert "field" in answer.json() and answer.json()["detail"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=64))
def test_random_bytes_never_get_a_5xx(learner, body):
    assert learner.post("/predict", content=body).status_code < 500


def test_settings_travel_through_the_environment(tmp_path):
    settings = Settings(str(tmp_path / "m.fctr"), learn=True, snapshot_every=5.0, max_batch=10)
    assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(ValueError, match="MODEL_PATH"):
        Settings.from_env({})
    with pytest.raises(ValueError, match="max_batch"):
        Settings("m", max_batch=0)


def test_a_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.fctr"):
        create_app(tmp_path / "missing.fctr")


def test_a_reloaded_learning_model_is_warmed_up_before_it_serves(tmp_path, monkeypatch):
    """A model of another class swapped in would compile at its first click: it is warmed up
    (on a clone: its answers unchanged) before the swap."""
    from fastctr.service.served import ServedModel

    warmed, real = [], ServedModel.warm_up
    monkeypatch.setattr(ServedModel, "warm_up", lambda self: warmed.append(self) or real(self))
    path = model_file(tmp_path)
    with learning_client(path) as client:
        fm = trained(MODELS["fm"])
        fm.save(path)
        assert client.post("/model/reload").json()["class"] == "FMClassifier"
        assert warmed[-1] is client.app.state.holder.current
        for row in ROWS[400:405]:
            assert client.post("/predict", json={"features": row}).json()["ctr_probability"] \
                == fm.predict_one(row)
