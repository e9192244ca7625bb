"""What the operator records for kopf as the last handled state of a pipeline: the spec as a
digest (a spec may be larger than all of an object's annotations may hold), the rest whole."""

from __future__ import annotations

import json
from typing import Any, cast

import kopf

from mlpipeline_operator.reconcile.handlers import KOPF_PREFIX, SpecDigestStorage
from tests.unit.pipelines import pipeline

KEY = f"{KOPF_PREFIX}/last-handled-configuration"


def _storage() -> SpecDigestStorage:
    return SpecDigestStorage(prefix=KOPF_PREFIX, key="last-handled-configuration")


def _body(doc: dict[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, doc))


def _digest(doc: dict[str, Any]) -> object:
    return dict(_storage().build(body=_body(doc)))["specSha256"]


def test_the_spec_is_recorded_as_its_digest_and_the_annotations_whole() -> None:
    doc = pipeline()
    doc["metadata"]["annotations"] = {"mlops.gitops.dev/stop": "current"}

    essence = _storage().build(body=_body(doc))

    assert set(essence) == {"metadata", "specSha256"}
    assert essence["metadata"] == {"annotations": {"mlops.gitops.dev/stop": "current"}}
    assert len(json.dumps(essence)) < 200


def test_a_change_anywhere_in_the_spec_changes_the_digest_and_key_order_does_not() -> None:
    doc = pipeline()
    changed = pipeline()
    changed["spec"]["parameters"][0]["value"] = "0.2"
    reordered = pipeline()
    reordered["spec"] = dict(reversed(list(reordered["spec"].items())))

    assert _digest(changed) != _digest(doc)
    assert _digest(reordered) == _digest(doc)


def test_a_record_kept_whole_by_an_earlier_version_matches_the_unchanged_spec() -> None:
    doc = pipeline()
    whole = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX, key="last-handled-configuration")
    doc["metadata"]["annotations"] = {KEY: json.dumps(whole.build(body=_body(doc)))}

    assert _storage().fetch(body=_body(doc)) == _storage().build(body=_body(doc))


def test_no_record_yet_is_none() -> None:
    assert _storage().fetch(body=_body(pipeline())) is None
