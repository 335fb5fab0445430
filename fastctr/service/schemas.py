"""The service's request and response bodies as pydantic models: what ``/docs`` shows.

The hot routes (``/predict``, ``/feedback``) do not validate through these models (pydantic
costs several times the JSON decoding itself); :mod:`fastctr.service.rows` checks the same
shapes on the decoded body and names the field at fault. The models here are the contract
those checks keep.
"""
from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

#: A feature's value: a string (categorical), a number (numeric field) or null (missing)
FeatureValue = Union[StrictStr, StrictInt, StrictFloat, None]  # noqa: UP007 (a runtime alias)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Row(_Body):
    """One row to score, in exactly one of three forms: ``features``; ``line``; or
    ``numerical_features`` with ``categorical_features``."""

    features: dict[str, FeatureValue] | None = Field(
        None, description="field name -> value, e.g. {\"I1\": 3, \"C1\": \"68fd1e64\"}; a key "
                          "that is not one of the model's fields is refused (the model's "
                          "unknown='strict' policy, the default) or skipped (unknown='ignore')",
        examples=[{"I1": 3, "C1": "68fd1e64"}])
    line: str | None = Field(
        None, description="the fields' values in schema order separated by tabs, as a Criteo "
                          "test-set line (no label; an empty value is missing)")
    numerical_features: list[StrictInt | StrictFloat | None] | None = Field(
        None, description="the model's numeric fields in schema order (Criteo: I1..I13, 13 "
                          "values); null is missing")
    categorical_features: list[StrictStr | None] | None = Field(
        None, description="the model's categorical fields in schema order (Criteo: C1..C26, "
                          "26 values); null is missing")
    request_id: str | None = Field(
        None, min_length=1, max_length=128,
        description="the id feedback names; generated (uuid4 hex) when absent")
    entities: dict[str, str] | None = Field(
        None, description="entity -> id, e.g. {\"user\": \"u17\"}: their stored features (PUT "
                          "/features/{entity}/{id}) are merged under the row's own")


class BatchRequest(_Body):
    rows: list[Row] = Field(..., description="rows to score (at most the service's max_batch, "
                                             "1000 by default)")


class Prediction(BaseModel):
    ctr_probability: float
    request_id: str
    model_version: str = Field(..., description="the model file's checksum, +N after N rows "
                                                "were learned from feedback")


class BatchPrediction(BaseModel):
    predictions: list[float]
    request_ids: list[str]
    model_version: str


class Feedback(_Body):
    request_id: str = Field(..., min_length=1, max_length=128)
    click: Literal[0, 1] = Field(..., description="1: clicked, 0: not clicked (true/false too)")


class FeedbackBatch(_Body):
    feedback: list[Feedback]


class FeedbackResult(BaseModel):
    request_id: str
    status: int = Field(..., description="200 learned, 404 unknown or expired, 409 labelled "
                                         "already")
    detail: str | None = None


class FeedbackAnswer(BaseModel):
    learned: int = Field(..., description="impressions learned by this request")
    model_version: str
    results: list[FeedbackResult] | None = Field(None, description="one per item of a batch")


class EntityFeatures(_Body):
    features: dict[str, FeatureValue]
    ttl: float | None = Field(None, gt=0, description="seconds kept (at most, and by default, "
                                                      "the service's feature_ttl)")


class ModelInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(..., alias="class")
    params: dict
    hasher: dict
    version: str
    checksum: str = Field(..., description="CRC-32 of the model file, hex")
    path: str
    rows_learned: int | None = Field(..., description="rows the model learned in all (None for "
                                                      "a Scorer)")
    rows_learned_online: int = Field(..., description="rows learned from feedback since loaded")
    loaded_at: str
    learning: bool


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    live: bool
    ready: bool
    warm_up_s: float | None = Field(..., description="seconds the learning kernels took to "
                                    "warm up at start (null: still warming, not ready)")
    reasons: list[str]
    model_version: str
    impressions: int | None
    features: dict[str, int | float]


class Error(BaseModel):
    detail: str = Field(..., description="what is wrong and the fix")
    field: str = Field(..., description="the path of the field at fault in the JSON body, "
                                        "e.g. rows[3].features.C5; empty for the whole body")


#: the models /docs lists (request bodies are declared through openapi_extra)
DOC_MODELS = (Row, BatchRequest, Prediction, BatchPrediction, Feedback, FeedbackBatch,
              FeedbackAnswer, FeedbackResult, EntityFeatures, ModelInfo, Health, Error)
