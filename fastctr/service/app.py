"""The FastAPI application of ``fastctr serve``: predict, click feedback, entity features and
the model's lifecycle.

``create_app(model_path, ...)`` builds it in Python; ``uvicorn --factory
fastctr.service.app:from_env`` builds it from ``FASTCTR_SERVE_*`` environment variables
(what ``fastctr serve --workers N`` sets, so that every worker builds the same app).

The hot routes read the raw body, decode it with orjson and check it with
:mod:`fastctr.service.rows` (pydantic models only declare the schemas ``/docs`` shows); a row
is hashed and scored in one compiled call, a batch hashed in one call and scored in another.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic.json_schema import models_json_schema

from fastctr.io.rows import HashedRows
from fastctr.service import schemas
from fastctr.service.arms import CONTROL, Arms, arm_names, unit_of
from fastctr.service.breaker import Unavailable
from fastctr.service.errors import (
    AlreadyLabelled,
    BodyNotRead,
    ClientError,
    Conflict,
    ScoredByFallback,
    UnknownImpression,
)
from fastctr.service.fallback import fallback_model
from fastctr.service.gateway import ServiceApp, json_answer, read_body
from fastctr.service.rows import (
    check_features,
    check_object,
    decode,
    field_path,
    json_type,
    new_ids,
    parse_batch,
    parse_row,
    request_id,
)
from fastctr.service.served import ModelHolder, ServedModel
from fastctr.service.stores import (
    FeatureStore,
    Impression,
    ImpressionStore,
    LocalFeatureStore,
    LocalImpressionStore,
    fallback_marker,
    refused,
)
from fastctr.service.telemetry import TICK, Telemetry, state_of

log = logging.getLogger("fastctr.service")

#: seconds /health keeps saying degraded after the fallback last scored for a model that raised
FALLBACK_SHOWN = 60.0

ENV_PREFIX = "FASTCTR_SERVE_"

#: the media type of a /predict body of raw lines (one row a line, fields tab-separated)
TSV = b"text/tab-separated-values"


@dataclass(frozen=True)
class Settings:
    """Everything the service is started with (``create_app``'s arguments).

    Attributes
    ----------
    model_path : path of the model (or Scorer) file served
    learn : feedback teaches the model (a trainable model file)
    snapshot_every : seconds between snapshots of a learning model to ``model_path`` (None: never)
    redis_url : Redis for impressions and entity features (None: in-process stores)
    redis_timeout : seconds one Redis call may take (connect, answer) before it counts as a
        failure of Redis (the circuit breaker opens after 3 in a row)
    max_batch : most rows in one predict or feedback request
    impression_ttl, max_impressions : how long, and how many, impressions are kept for feedback
    feature_ttl, max_features : the same for entity features
    max_body : largest request body in bytes
    reload_poll : seconds between looks at the model file for a new one (0: no watching)
    mmap : map a Scorer's (or a non-learning model's) arrays read-only instead of reading
        them; the file must then be replaced by rename only (``model.save`` does): a file
        rewritten in place under a mapping kills the process (SIGBUS)
    quality_window : labelled impressions the live quality figures are computed over
    ab : A/B test challengers, ``(model path, share of units)`` each (``--ab PATH:SHARE``);
        ``model_path`` is the control and gets the rest
    fallback, fallback_ctr : a model file, or a constant CTR, that serves when the model
        fails to load or raises (see :mod:`fastctr.service.fallback`)
    stats_dir : the directory the workers of ``fastctr serve --workers N`` share for
        /metrics and /stats (see :mod:`fastctr.service.telemetry`); None: one process
    """

    model_path: str
    learn: bool = False
    snapshot_every: float | None = None
    redis_url: str | None = None
    redis_timeout: float = 0.05
    max_batch: int = 1000
    impression_ttl: float = 3600.0
    max_impressions: int = 1_000_000
    feature_ttl: float = 3600.0
    max_features: int = 100_000
    max_body: int = 8 << 20
    reload_poll: float = 1.0
    mmap: bool = False
    quality_window: int = 100_000
    stats_dir: str | None = None
    ab: tuple = ()
    fallback: str | None = None
    fallback_ctr: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_impressions", "max_features", "max_body",
                     "quality_window"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}")
        for name in ("impression_ttl", "feature_ttl", "redis_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds; got {getattr(self, name)!r}")
        if self.snapshot_every is not None and not self.snapshot_every > 0:
            raise ValueError(f"snapshot_every must be > 0 seconds; got {self.snapshot_every!r}")
        if not self.reload_poll >= 0:
            raise ValueError(f"reload_poll must be >= 0 seconds; got {self.reload_poll!r}")
        if self.fallback is not None and self.fallback_ctr is not None:
            raise ValueError("give fallback (a model file) or fallback_ctr (a constant), not both")
        if self.fallback_ctr is not None and not 0 < self.fallback_ctr < 1:
            raise ValueError(f"fallback_ctr must be in (0, 1); got {self.fallback_ctr!r}")
        object.__setattr__(self, "ab", tuple((str(path), float(share)) for path, share in self.ab))

    def to_env(self) -> dict[str, str]:
        """The settings as ``FASTCTR_SERVE_*`` variables (JSON values) for :func:`from_env`."""
        return {ENV_PREFIX + k.upper(): json.dumps(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_env(cls, environ=None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            text = environ.get(ENV_PREFIX + f.name.upper())
            if text is not None:
                try:
                    values[f.name] = json.loads(text)
                except ValueError:
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={text!r} is not JSON") from None
        if "model_path" not in values:
            raise ValueError(f"{ENV_PREFIX}MODEL_PATH is not set: the model file to serve")
        return cls(**values)


@dataclass
class Stores:
    """What the service keeps between requests; ``impressions`` is None when feedback is off
    (the service does not learn)."""

    impressions: ImpressionStore | None
    features: FeatureStore
    shared: Any = None  # with Redis: fastctr.service.shared.Shared (queue, learner, breaker)


def build_stores(settings: Settings) -> Stores:
    """The one place the stores are built: in-process, or (``redis_url``) on Redis."""
    if settings.redis_url is not None:
        from fastctr.service.shared import shared_stores  # imports redis: only when asked

        arms = {CONTROL: settings.model_path, **{
            name: path for name, (path, _) in zip(arm_names(settings.ab), settings.ab)}} \
            if settings.ab else None
        shared = shared_stores(settings.model_path, redis_url=settings.redis_url,
                               learn=settings.learn, impression_ttl=settings.impression_ttl,
                               feature_ttl=settings.feature_ttl, max_features=settings.max_features,
                               snapshot_every=settings.snapshot_every,
                               timeout=settings.redis_timeout, arms=arms)
        return Stores(shared.impressions, shared.features, shared)
    impressions = (LocalImpressionStore(settings.max_impressions, settings.impression_ttl)
                   if settings.learn else None)
    return Stores(impressions, LocalFeatureStore(settings.max_features, settings.feature_ttl))


def create_app(model_path, *, learn: bool = False, snapshot_every: float | None = None,
               redis_url: str | None = None, max_batch: int = 1000,
               impression_ttl: float = 3600.0, max_impressions: int = 1_000_000,
               **more) -> FastAPI:
    """The service of the model at ``model_path``, as a FastAPI application.

    Parameters are the :class:`Settings`' (``more``: the others, e.g. ``reload_poll``).

    Examples
    --------
    >>> import os, tempfile
    >>> from fastapi.testclient import TestClient
    >>> from fastctr import FTRLClassifier
    >>> path = os.path.join(tempfile.mkdtemp(), "model.fctr")
    >>> FTRLClassifier(bits=18).fit([{"C1": "a"}, {"C1": "b"}] * 10, [1, 0] * 10).save(path)
    >>> client = TestClient(create_app(path, learn=True))
    >>> answer = client.post("/predict", json={"features": {"C1": "a"}}).json()
    >>> round(answer["ctr_probability"], 3)
    0.548
    >>> client.post("/feedback", json={"request_id": answer["request_id"], "click": 0}).json()["learned"]
    1
    >>> client.post("/predict", json={"features": {"C1": "a"}}).json()["ctr_probability"] < 0.548
    True
    """
    settings = Settings(str(model_path), learn=learn, snapshot_every=snapshot_every,
                        redis_url=redis_url, max_batch=max_batch, impression_ttl=impression_ttl,
                        max_impressions=max_impressions, **more)
    return build_app(settings)


def from_env() -> FastAPI:
    """The app of the ``FASTCTR_SERVE_*`` environment (``uvicorn --factory``)."""
    return build_app(Settings.from_env())


def build_app(settings: Settings) -> FastAPI:
    stores = build_stores(settings)
    # with Redis the workers serve the file and one learner (shared.learner) rewrites it
    learn_here = settings.learn and stores.shared is None
    fallback = fallback_model(settings.fallback, settings.fallback_ctr)
    mmap = settings.mmap and not learn_here
    try:
        holder = ModelHolder(settings.model_path, learn=learn_here, mmap=mmap)
    except (OSError, ValueError) as e:
        if fallback is None:
            raise
        # start on the fallback; the file watcher swaps the model in once its file loads
        holder = ModelHolder(settings.model_path, learn=learn_here, mmap=mmap, serving=fallback)
        holder.problems["reload"] = (f"the model {settings.model_path} failed to load ({e}); "
                                     f"serving the fallback {fallback.version} until it loads")
        log.error("%s", holder.problems["reload"])
    app = ServiceApp(max_body=settings.max_body, title="fastctr",
                     version=holder.current.version, lifespan=_lifespan,
                     description="Click-through-rate predictions, click feedback and entity "
                                 "features (fastctr serve).")
    app.state.settings, app.state.holder, app.state.stores = settings, holder, stores
    app.state.fallback, app.state.fell_back = fallback, None  # (when, why) it last served
    # seconds the learning kernels took to warm up (None: not yet; /health is not ready)
    app.state.warm_up_s = None if learn_here else 0.0
    app.state.arms = Arms(holder, settings.ab, learn=learn_here, mmap=holder.mmap) \
        if settings.ab else None
    app.telemetry = app.state.telemetry = _telemetry(settings, stores, app.state.arms)
    _install_errors(app)
    _routes(app, settings, holder, stores)
    _install_openapi(app)
    return app


def _telemetry(settings: Settings, stores: Stores, arms: Arms | None) -> Telemetry:
    telemetry = Telemetry(stats_dir=settings.stats_dir, quality_window=settings.quality_window,
                          ab=arms.test if arms is not None else None)
    learner = stores.shared.learner if stores.shared is not None else None
    if learner is not None:  # the learner sees the labelled clicks: it feeds the monitor
        learner.on_learn = lambda taken, clicks: telemetry.learned(
            [imp.p for imp in taken], clicks, [imp.arm for imp in taken])
    return telemetry


# -- routes ----------------------------------------------------------------------------------

def _body(model: type, *more: type, text: str | None = None) -> dict:
    """openapi_extra declaring a JSON request body of one of the models (or, with ``text``,
    a tab-separated body so described)."""
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in (model, *more)]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    content = {"application/json": {"schema": schema}}
    if text is not None:
        content[TSV.decode()] = {"schema": {"type": "string", "description": text}}
    return {"requestBody": {"required": True, "content": content}}


def _answers(ok: type, *more: type) -> dict:
    """The responses of a route for /docs: ``ok`` (or one of several) and the errors."""
    err = {"model": schemas.Error}
    content = {"application/json": {"schema": {"oneOf": [
        {"$ref": f"#/components/schemas/{m.__name__}"} for m in (ok, *more)]}}} if more else None
    return {200: {"model": ok} if not more else {"description": "OK", "content": content},
            413: {**err, "description": "body or batch too large"},
            422: {**err, "description": "a field is malformed (named in 'field')"}}


def _routes(app: FastAPI, settings: Settings, holder: ModelHolder, stores: Stores) -> None:
    max_body, max_batch = settings.max_body, settings.max_batch
    features, impressions = stores.features, stores.impressions
    queue = stores.shared.queue if stores.shared is not None else None
    telemetry, arms, fallback = app.telemetry, app.state.arms, app.state.fallback

    @app.hot("/predict", openapi_extra=_body(
        schemas.Row, schemas.BatchRequest,
        text="a batch as raw lines, one row a line, its fields tab-separated in the model's "
             "order (a Criteo test-set line), blank lines skipped: the fastest batch form"),
              responses=_answers(schemas.Prediction, schemas.BatchPrediction),
              summary="Click probability of one row or a batch")
    def predict(body: bytes, content_type: bytes) -> Response:
        served = holder.current  # this request's model to the end, whatever reloads
        if content_type.startswith(TSV):
            return _predict_text(body, served)
        doc = decode(body)
        if type(doc) is dict and "rows" in doc:
            return _predict_batch(doc, served)
        arm, drawn = "main", None
        if arms is not None:  # the unit's arm scores it (its request id drawn first if needed)
            drawn = _given_id(doc) or os.urandom(16).hex()
            arm, served = arms.route(doc, drawn)
        raw, rid = parse_row(doc, "", served, features)
        try:
            p = _score_one(served, raw, "")
        except Exception as e:  # the model raised: the fallback scores, if there is one
            p, served = _fall_back(e, served, lambda: fallback.model.predict_one(raw))
        telemetry.scored(1, arm, fallback=served is fallback)
        rid = rid or drawn or os.urandom(16).hex()  # a random 128-bit id (uuid4's randomness)
        if impressions is not None:
            _keep(served, raw, p, rid, arm)
        if arms is not None:
            return json_answer({"ctr_probability": p, "request_id": rid,
                                "model_version": served.version, "arm": arm})
        return json_answer({"ctr_probability": p, "request_id": rid,
                            "model_version": served.version})

    def _predict_batch(doc: dict, served: ServedModel) -> Response:
        check_object(doc, "", frozenset({"rows"}))
        items = _batch(doc, "rows")
        raws, given = parse_batch(items, served, features)
        ids = new_ids(len(given))
        if any(given):  # the rows' own ids where they gave one
            ids = [rid or new for rid, new in zip(given, ids)]
        if arms is not None:
            return _predict_arms(items, raws, ids)
        return _predict_rows(served, ids, None, lambda: raws)

    def _predict_text(body: bytes, served: ServedModel) -> Response:
        """A body of tab-separated lines, a row each, hashed by the compiled reader straight
        from the bytes (no JSON, no Python string a row)."""
        if arms is not None:  # each row scored by its arm's model, which hashes it its way
            lines = _lines(body)
            _check_size(len(lines), "")
            return _predict_arms([{}] * len(lines), lines, new_ids(len(lines)))
        try:
            rows = served.hash_text(body, max_batch)
        except ValueError as e:
            raise ClientError(422, "", f"the body: {e}") from None
        if rows is None:
            raise ClientError(413, "", f"the body holds more than {max_batch} lines; at most "
                                       f"{max_batch} a request (split the batch)")
        if rows.n_rows == 0:
            raise ClientError(422, "", "the body holds no line: send one row a line, its fields "
                                       "tab-separated in the model's order")
        return _predict_rows(served, new_ids(rows.n_rows), rows, lambda: _lines(body))

    def _predict_rows(served: ServedModel, ids: list[str], rows: HashedRows | None,
                      raws) -> Response:
        """Score a batch (``rows`` hashed already, or None: hash ``raws()``, the raw rows)
        and keep its impressions for feedback."""
        try:
            if rows is None:
                p, rows = _score_batch(served, raws())
            else:
                p = np.ascontiguousarray(served.model.predict_proba(rows)[:, 1])
        except Exception as e:
            p, served = _fall_back(e, served, lambda: _score_batch(fallback, raws())[0])
        telemetry.scored(len(ids), fallback=served is fallback)
        if impressions is not None:
            kept = [fallback_marker(served.version).to_bytes()] * len(ids) \
                if served is fallback else served.encoded_impressions(rows, p)
            _put_many(ids, kept)
        return json_answer({"predictions": p, "request_ids": ids,
                            "model_version": served.version})

    def _predict_arms(items: list, raws: list, ids: list[str]) -> Response:
        """A batch of an A/B test: each row scored by its unit's arm (positional rows are
        named by the control's fields)."""
        names = [arms.test.assign(unit_of(item) or rid) for item, rid in zip(items, ids)]
        p, versions = np.empty(len(raws)), {}
        for arm, holder_ in arms.holders.items():
            picked = [i for i, name in enumerate(names) if name == arm]
            if not picked:
                continue
            served = versions[arm] = holder_.current
            p[picked], rows = _score_batch(served, [raws[i] for i in picked], picked)
            telemetry.scored(len(picked), arm)
            if impressions is not None:
                _put_many([ids[i] for i in picked], served.encoded_impressions(rows, p[picked], arm),
                          picked)
        return json_answer({"predictions": p, "request_ids": ids, "arms": names,
                            "model_version": arms.holders["control"].current.version,
                            "model_versions": {a: s.version for a, s in versions.items()}})

    def _fall_back(error: Exception, served: ServedModel, score) -> tuple[Any, ServedModel]:
        """(the fallback's score, the fallback) for a model that raised; a client's mistake,
        or any error without a fallback, is raised."""
        if isinstance(error, ClientError) or fallback is None:
            raise error
        if app.state.fell_back is None or time.monotonic() - app.state.fell_back[0] > 10:
            log.error("the model %s raised %r: the fallback scores", served.version, error)
        app.state.fell_back = (time.monotonic(), f"the model {served.version} raised "
                               f"{type(error).__name__}: {error}; the fallback "
                               f"{fallback.version} scored")
        return score(), fallback

    def _batch(doc: dict, key: str) -> list:
        items = doc[key]
        if type(items) is not list:
            raise ClientError(422, key, f"must be an array; got {json_type(items)}")
        _check_size(len(items), key)
        return items

    def _check_size(n: int, field: str) -> None:
        if n > max_batch:
            raise ClientError(413, field, f"{n} items; at most {max_batch} a request "
                                          "(split the batch)")

    def _keep(served: ServedModel, raw, p: float, rid: str, arm: str) -> None:
        # the fallback learns nothing: a marker, so that the row's click gets the truth
        encoded = fallback_marker(served.version).to_bytes() if served is fallback \
            else served.encoded_impression(raw, p, arm)
        if impressions.put_many([(rid, encoded)]):
            raise ClientError(409, "request_id", Conflict.of(rid).args[0])

    def _put_many(ids: list[str], kept: list[bytes], rows: list[int] | None = None) -> None:
        """Keep a batch's encoded impressions; 409 naming the first row whose id is in use
        (``rows``: the batch positions of ``ids``, when a part of it)."""
        in_use = impressions.put_many(list(zip(ids, kept)))
        if in_use:
            i = in_use[0]
            raise ClientError(409, f"rows[{rows[i] if rows else i}].request_id",
                              Conflict.of(ids[i]).args[0])

    @app.hot("/feedback", openapi_extra=_body(schemas.Feedback, schemas.FeedbackBatch),
              responses={**_answers(schemas.FeedbackAnswer),
                         403: {"model": schemas.Error, "description": "the service does not learn"},
                         404: {"model": schemas.Error, "description": "unknown or expired id"},
                         409: {"model": schemas.Error, "description": "labelled already, or "
                                                                     "scored by the fallback"}},
              summary="Learn the click (1) or no click (0) of a predicted row")
    def feedback(body: bytes, content_type: bytes) -> Response:
        doc = decode(body)
        if impressions is None:
            raise ClientError(403, "", "this service does not learn: start it with --learn "
                                       "(learn=True) to send feedback")
        served = holder.current
        if type(doc) is dict and "feedback" in doc:
            check_object(doc, "", frozenset({"feedback"}))
            items = [_label(item, f"feedback[{i}]") for i, item in enumerate(_batch(doc, "feedback"))]
            if queue is not None:
                return _queue(items, served)
            results, taken, clicks = [], [], []
            for rid, click in items:
                try:
                    impression = impressions.take(rid)
                    refusal = refused(rid, impression)
                    if refusal is not None:
                        raise refusal
                except (UnknownImpression, AlreadyLabelled, ScoredByFallback) as e:
                    status = 404 if isinstance(e, UnknownImpression) else 409
                    results.append({"request_id": rid, "status": status, "detail": e.args[0]})
                    continue
                taken.append(impression)
                clicks.append(click)
                results.append({"request_id": rid, "status": 200, "detail": None})
            _learn(served, taken, clicks)
            return json_answer({"learned": len(taken), "model_version": served.version,
                                "results": results})
        rid, click = _label(doc, "")
        if queue is not None:
            outcome = queue.label([rid], [click])[0]
            if isinstance(outcome, Exception):
                raise _refusal(outcome, "request_id") from None
            telemetry.received_labels(1)
            return json_answer({"learned": 1, "model_version": served.version, "results": None})
        try:
            impression = impressions.take(rid)
        except UnknownImpression as e:
            raise ClientError(404, "request_id", e.args[0]) from None
        except AlreadyLabelled as e:
            raise ClientError(409, "request_id", e.args[0]) from None
        refusal = refused(rid, impression)
        if refusal is not None:
            raise ClientError(409, "request_id", refusal.args[0])
        _learn(served, [impression], [click])
        return json_answer({"learned": 1, "model_version": served.version, "results": None})

    def _queue(items: list[tuple[str, int]], served: ServedModel) -> Response:
        """Feedback with Redis: each click queued for the learner, atomically taken."""
        outcomes = queue.label([rid for rid, _ in items], [click for _, click in items])
        results = [{"request_id": rid, "status": 200, "detail": None} if not isinstance(o, Exception)
                   else {"request_id": rid, "status": _refusal(o, "").status, "detail": o.args[0]}
                   for (rid, _), o in zip(items, outcomes)]
        queued = sum(r["status"] == 200 for r in results)
        telemetry.received_labels(queued)
        return json_answer({"learned": queued, "model_version": served.version,
                            "results": results})

    def _refusal(error: Exception, field: str) -> ClientError:
        status = 404 if isinstance(error, UnknownImpression) else 409 \
            if isinstance(error, (AlreadyLabelled, ScoredByFallback)) else 503
        return ClientError(status, field, error.args[0])

    def _label(doc: Any, where: str) -> tuple[str, int]:
        check_object(doc, where, frozenset({"request_id", "click"}))
        rid = request_id(doc.get("request_id"), f"{where}.request_id" if where else "request_id")
        click = doc.get("click")
        here = f"{where}.click" if where else "click"
        if rid is None:
            raise ClientError(422, f"{where}.request_id" if where else "request_id",
                              "is required: the id /predict answered")
        if type(click) not in (int, bool) or click not in (0, 1):  # 0, 1, false, true
            shown = click if type(click) in (int, float) else json_type(click)
            raise ClientError(422, here, f"must be 0 or 1 (or false/true); got {shown}")
        return rid, int(click)

    def _learn(served: ServedModel, taken: list[Impression], clicks: list[int]) -> None:
        if not taken:
            return
        telemetry.received_labels(len(taken))
        groups = arms.by_arm(taken, clicks) if arms is not None else [(served, taken, clicks)]
        try:
            for served, arm_taken, arm_clicks in groups:  # each arm learns its impressions
                served.learn(arm_taken, arm_clicks)
        except ValueError as e:  # hashed for a model since replaced by one of other bits
            raise ClientError(409, "request_id", f"the impression cannot be learned by the "
                                                 f"served model {served.version}: {e}") from None
        telemetry.learned([imp.p for imp in taken], clicks, [imp.arm for imp in taken])

    # the on-call page (issue 16): static HTML polling /stats, shipped as package data
    with open(os.path.join(os.path.dirname(__file__), "dashboard.html"), "rb") as page:
        dashboard_page = page.read()

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> Response:
        return Response(dashboard_page, media_type="text/html; charset=utf-8")

    @app.get("/model", responses={200: {"model": schemas.ModelInfo}},
             summary="The served model: class, parameters, version, checksum, rows learned")
    async def model_info() -> Response:
        return json_answer(holder.current.describe())

    @app.post("/model/reload", responses={200: {"model": schemas.ModelInfo},
                                          409: {"model": schemas.Error}},
              summary="Load the model file again and swap it in atomically")
    async def reload() -> Response:
        try:
            served = await asyncio.to_thread(holder.reload)
        except (OSError, ValueError) as e:
            raise ClientError(409, "", f"{e}; still serving version "
                                       f"{holder.current.version}") from None
        return json_answer(served.describe())

    @app.get("/health", responses={200: {"model": schemas.Health}},
             summary="live / ready / degraded, with the reasons")
    async def health() -> Response:
        reasons, shared_info = _reasons(app)
        warm_up_s = app.state.warm_up_s
        kept = None if impressions is None or stores.shared else len(impressions)
        return json_answer({"status": "degraded" if reasons else "ok", "live": True,
                            "ready": warm_up_s is not None, "warm_up_s": warm_up_s,
                            "reasons": reasons, "model_version": holder.current.version,
                            "impressions": kept, "features": features.stats(), **shared_info})

    @app.get("/metrics", include_in_schema=True,
             summary="Prometheus metrics (text format), every worker's together")
    async def metrics() -> Response:
        body, content_type = await asyncio.to_thread(telemetry.metrics)
        return Response(body, media_type=content_type)

    @app.get("/ab", summary="The A/B test: per arm impressions, clicks, CTR, AUC, calibration, "
                            "log loss; each challenger's difference to the control with its "
                            "interval and p-value", responses={404: {"model": schemas.Error}})
    async def ab() -> Response:
        if arms is None:
            raise ClientError(404, "", "no A/B test: start the service with --ab MODEL:SHARE")
        return json_answer(await asyncio.to_thread(arms.report))

    @app.get("/stats", summary="Traffic, latency, errors, CPU, feature-cache hits and the live "
                               "model quality (and A/B report), as JSON (fields in the README)")
    async def stats() -> Response:
        return json_answer(await asyncio.to_thread(telemetry.stats, _state(app)))

    @app.put("/features/{entity}/{key}", openapi_extra=_body(schemas.EntityFeatures),
             responses={200: {"model": schemas.EntityFeatures}, 422: {"model": schemas.Error}},
             summary="Store an entity's features (merged into rows naming it in 'entities')")
    async def put_features(entity: str, key: str, request: Request) -> Response:
        body = await read_body(request.scope, request.receive, max_body)
        doc = check_object(decode(body), "", frozenset({"features", "ttl"}))
        values = check_features(doc.get("features"), "features")
        ttl = doc.get("ttl")
        if ttl is not None and (type(ttl) not in (int, float) or not ttl > 0):
            raise ClientError(422, "ttl", f"must be a number of seconds > 0; got {ttl!r}")
        served = holder.current
        try:  # the keys must be fields under the model's policy (hashing the row checks it)
            served.row_hasher.hash_row_bytes(values)
        except (TypeError, ValueError) as e:
            raise _row_refusal(served, values, "", e) from None
        features.put(entity, key, values, ttl)
        return json_answer({"features": values, "ttl": ttl})

    @app.get("/features/{entity}/{key}", responses={200: {"model": schemas.EntityFeatures},
                                                    404: {"model": schemas.Error}},
             summary="An entity's stored features")
    async def get_features(entity: str, key: str) -> Response:
        values = features.get(entity, key)
        if values is None:
            raise ClientError(404, "", f"no features stored for {entity} {key!r} (or expired)")
        return json_answer({"features": values, "ttl": None})


def _reasons(app: FastAPI) -> tuple[list[str], dict]:
    """(why the service is degraded, what /health shows of Redis and the learner)."""
    stores = app.state.stores
    reasons = list(app.state.holder.problems.values())
    if app.state.arms is not None:
        reasons += [f"arm {arm}: {problem}" for arm, h in app.state.arms.holders.items()
                    if h is not app.state.holder for problem in h.problems.values()]
    shared_info, shared_reasons = stores.shared.health() if stores.shared else ({}, [])
    reasons += shared_reasons
    reasons += [f"model quality: {w}" for w in app.state.telemetry.quality_warnings()]
    fell_back = app.state.fell_back
    if fell_back is not None and time.monotonic() - fell_back[0] < FALLBACK_SHOWN:
        reasons.append(fell_back[1])
    return reasons, shared_info


def _state(app: FastAPI) -> dict:
    """What the telemetry reads of the app once a second (and for /stats)."""
    served = app.state.holder.current
    reasons, shared_info = _reasons(app)
    return state_of(served.version, served.loaded_at, reasons, app.state.stores.features.stats(),
                    shared_info)


def _given_id(doc: Any) -> str | None:
    """The request id a row gives, if a string (parse_row checks it)."""
    rid = doc.get("request_id") if type(doc) is dict else None
    return rid if type(rid) is str else None


def _score_one(served: ServedModel, raw, where: str) -> float:
    """One raw row hashed and scored in one compiled call; the hasher's refusals are 422s."""
    try:
        return served.model.predict_one(raw)
    except (TypeError, ValueError) as e:
        raise _row_refusal(served, raw, where, e) from None


def _row_refusal(served: ServedModel, raw, where: str, error: Exception) -> ClientError:
    """The hasher's refusal of a raw row as a 422 naming the field: a line, or the value at
    fault in a dict (found by hashing each alone: this runs only once a row was refused)."""
    if isinstance(raw, str):
        return ClientError(422, field_path(where, "line"), str(error))
    field = field_path(where, "features")
    for key, value in raw.items():
        try:
            served.row_hasher.hash_row_bytes({key: value})
        except (TypeError, ValueError):
            return ClientError(422, field_path(field, key), str(error))
    return ClientError(422, field, str(error))


def _score_batch(served: ServedModel, raws: list,
                 positions: list[int] | None = None) -> tuple[np.ndarray, HashedRows]:
    """Click probabilities of a batch and its hashed rows: hashed in one compiled call (dict
    rows, their values checked as they are hashed, or lines through the compiled reader)
    and scored in another; a batch of both forms (or of lines the reader cannot take) is
    hashed row by row, each row in one compiled call. A refused row is named by its place in
    the request (``positions``: those of ``raws``, when a part of it)."""
    model = served.model
    try:
        rows = None
        kinds = set(map(type, raws))
        if kinds == {dict}:
            rows = model.hasher_.transform(raws, scalars_only=True)
        elif kinds == {str}:
            rows = served.hash_lines(raws)
        if rows is None:
            rows = served.hash_each(raws)
        return np.ascontiguousarray(model.predict_proba(rows)[:, 1]), rows
    except (TypeError, ValueError):
        for i, raw in enumerate(raws):  # name the row at fault
            where = f"rows[{positions[i] if positions else i}]"
            if type(raw) is dict:
                check_features(raw, field_path(where, "features"))
            _score_one(served, raw, where)
        raise


def _lines(body: bytes) -> list[str]:
    """The lines of a tab-separated body as strings, as the reader takes them: split at
    ``\n``, a ``\r`` before it dropped, empty lines skipped."""
    try:
        text = body.decode()
    except UnicodeDecodeError as e:
        raise ClientError(422, "", f"the body is not UTF-8 text: {e}") from None
    return [line for line in (part.removesuffix("\r") for part in text.split("\n")) if line]


# -- errors, docs and background tasks ---------------------------------------------------------

def _install_errors(app: FastAPI) -> None:
    async def client_error(request: Request, e: ClientError) -> Response:
        answer = json_answer({"detail": str(e), "field": e.field}, e.status)
        if isinstance(e, BodyNotRead):
            answer.raw_headers.append((b"connection", b"close"))
        return answer

    async def validation_error(request: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(part) for part in first.get("loc", ()))
        return json_answer({"detail": f"{field}: {first.get('msg')}", "field": field}, 422)

    async def unavailable(request: Request, e: Unavailable) -> Response:
        return json_answer({"detail": f"{e}; retry later", "field": ""}, 503)

    app.add_exception_handler(ClientError, client_error)
    app.add_exception_handler(Unavailable, unavailable)
    app.add_exception_handler(RequestValidationError, validation_error)


def _install_openapi(app: FastAPI) -> None:
    """/docs lists the request models too (declared through openapi_extra, not validated)."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
            _, defs = models_json_schema([(m, "validation") for m in schemas.DOC_MODELS],
                                         ref_template="#/components/schemas/{model}")
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in defs.get("$defs", {}).items():
                components.setdefault(name, schema)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    """The file watcher and the snapshots run while the app serves; a last snapshot is
    written at shutdown."""
    settings, holder = app.state.settings, app.state.holder
    learner = app.state.stores.shared.learner if app.state.stores.shared else None
    if learner is not None:
        learner.start()
    tasks = []
    holders = list(app.state.arms.holders.values()) if app.state.arms else [holder]
    for one in holders:  # every A/B arm is watched and snapshotted as the model is
        if settings.reload_poll > 0:
            tasks.append(asyncio.create_task(_watch(one, settings.reload_poll)))
        if settings.learn and settings.snapshot_every:
            tasks.append(asyncio.create_task(_snapshots(one, settings.snapshot_every)))
    tasks.append(asyncio.create_task(_ticks(app)))
    if app.state.warm_up_s is None:
        tasks.append(asyncio.create_task(_warm_up(app, holders)))
    _freeze_heap()
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)
        for one in holders:
            if one.learn_enabled and settings.snapshot_every:
                await asyncio.to_thread(one.snapshot)
        if learner is not None:  # drains the queue and snapshots if this worker learns
            await asyncio.to_thread(learner.stop)
        app.state.telemetry.close()


async def _warm_up(app: FastAPI, holders: list[ModelHolder]) -> None:
    """Warm the learning kernels up (seconds on a first run, see ServedModel.warm_up) while
    /health says not ready, so that the first click does not stall the event loop."""
    seconds = 0.0
    for one in holders:
        served = one.current
        if served.learnable:
            try:
                seconds += await asyncio.to_thread(served.warm_up)
            except Exception:  # not ready forever would be worse: the first click pays
                log.exception("warming the learning of %s up failed", served.version)
    app.state.warm_up_s = round(seconds, 3)
    _freeze_heap()  # (what compiling made too)
    log.info("learning warmed up in %.2f s: ready", seconds)


def _freeze_heap() -> None:
    """Take what exists now (modules, the model, ~150,000 objects) out of the garbage
    collector's sight: a full collection walking it stalled every request in flight for
    ~0.1 s (p99 at 10 connections: 47 ms, 2.5 ms frozen; see the README's load test)."""
    gc.collect()
    gc.freeze()


async def _watch(holder: ModelHolder, every: float) -> None:
    """Reload the model when its file is replaced or rewritten (by anyone but our
    snapshots); a file that fails to load leaves the old model serving, /health degraded."""
    while True:
        await asyncio.sleep(every)
        if holder.file_changed():
            with contextlib.suppress(OSError, ValueError):
                await asyncio.to_thread(holder.reload, True)


async def _ticks(app: FastAPI) -> None:
    """Once a second: the state metrics refreshed, quality warnings logged, this worker's
    figures published for the others (see :mod:`fastctr.service.telemetry`)."""
    while True:
        await asyncio.sleep(TICK)
        try:
            await asyncio.to_thread(app.state.telemetry.tick, _state(app))
        except Exception:  # never let a reporting failure stop the ticks
            log.exception("telemetry tick failed")


async def _snapshots(holder: ModelHolder, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(holder.snapshot)
