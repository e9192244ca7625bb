"""Validation of MLPipeline documents: every problem at once, each as a field path and a message.

Two layers: the pydantic models check shapes (types, enums, bounds, unknown fields), then
`check_spec` checks meaning (references between steps, cycles, placeholders, cron...).
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import urllib.parse
import zoneinfo
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from mlpipeline_operator import conditions, placeholders, sources
from mlpipeline_operator.api.constants import (
    ANNOTATION_GIT_REVISION,
    ANNOTATION_RUN_AT,
    API_VERSION,
    ARGO_GROUP,
    GROUP,
    KIND,
    LABEL_MANAGED_BY,
    MAX_SCHEDULED_NAME,
)
from mlpipeline_operator.api.models import (
    CAPABILITY_PATTERN,
    CONFIG_KEY_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    GATE_METRIC_PATTERN,
    Affinity,
    ArtifactSource,
    Defaults,
    EnvVar,
    ExitStep,
    LabelSelector,
    LabelSelectorRequirement,
    MLPipeline,
    MLPipelineSpec,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodAffinity,
    PodSecurityContext,
    Schedule,
    SeccompProfile,
    SecurityContext,
    Step,
    Toleration,
    VolumeMount,
    duration_nanoseconds,
)
from mlpipeline_operator.caching import step_max_age
from mlpipeline_operator.core import (
    ENTRY_TEMPLATE,
    EXIT_STEP,
    ITEM_PARAMETER,
    PROMOTION_INPUTS,
    PROMOTION_TASK,
    Problem,
    after_promotion,
    exit_as_step,
    rfc3339_error,
    split_ref,
    step_dependencies,
    step_texts,
    uses_promotion,
)
from mlpipeline_operator.lineage import ENV_TRACKING_URI, RESERVED_ENV_PREFIX, RUN_TAGS
from mlpipeline_operator.messages import described, quoted
from mlpipeline_operator.perf import gc_paused

# Bounds on the MLPipeline object itself (the API server stores it in etcd too).
MAX_SPEC_BYTES = 512 * 1024


# --- Shapes --------------------------------------------------------------------------------------

# Messages for the patterns of the models, which pydantic reports only as regular expressions.
_PATTERN_HINTS = {
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$": "must be lower-case letters, digits and '-', start with a "
    "letter and not end with '-'",
    r"^[a-zA-Z0-9_][-a-zA-Z0-9_]*$": "must be letters, digits, '_' and '-', not starting with '-'",
    r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$": 'must be a duration such as "30s", "10m" or '
    '"1h30m" (units: ns, us, ms, s, m, h)',
    r"^[^.]+\.[^.]+$": 'must be "STEP.NAME", the output NAME of step STEP',
    r"^/": "must be an absolute path",
    r"^[-._a-zA-Z][-._a-zA-Z0-9]*$": "must be a valid environment variable name",
    CAPABILITY_PATTERN: "is not a Linux capability as Kubernetes names it: upper-case letters, "
    "digits and '_', such as NET_BIND_SERVICE",
    CONFIG_KEY_PATTERN: "is not a key of a Secret or ConfigMap: use letters, digits, '-', '_' "
    "and '.'",
    DNS_SUBDOMAIN_PATTERN: "is not a Kubernetes resource name: use lower-case letters, digits, "
    "'-' and '.', starting and ending with a letter or digit",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "is not a volume name: use lower-case letters, digits "
    "and '-', starting and ending with a letter or digit",
    GATE_METRIC_PATTERN: "is not a metric a gate can name: no '<', '>' or '=', no space at "
    "either end",
}
# Location parts that pydantic adds for union members and validators, not field names.
_TYPE_TAG = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|function-.*|literal\[.*\])$")


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _TYPE_TAG.match(part):
            out += f".{part}" if out else part
    return out


# What a type error of pydantic's expected, for "expected an integer, got the string "3"".
_EXPECTED = {
    "int_type": "an integer",
    "bool_type": "a boolean",
    "float_type": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "list_type": "a list",
}


def _message(error: Any) -> str:
    kind = error["type"]
    given = error.get("input")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "string_too_short" and given == "":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is {len(given)} characters long; at most {error['ctx']['max_length']} are allowed"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {described(given)}"
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(error["ctx"]["pattern"], f"must match {error['ctx']['pattern']}")
        return f"{quoted(given)} {hint}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    message = str(error["msg"])
    if given is not None and not isinstance(given, dict | list):
        message += f" (got {quoted(given)})"
    return message


def _merged(messages: list[str]) -> str:
    """The messages of one path as one: the alternatives of a union ("expected a string, got
    the number 0.5" and "expected an integer, got ...") become "expected a string or an integer,
    got the number 0.5"."""
    expected: dict[str, list[str]] = {}
    others: list[str] = []
    for message in messages:
        if message.startswith("expected ") and ", got " in message:
            what, _, got = message[len("expected ") :].partition(", got ")
            expected.setdefault(got, []).append(what)
        else:
            others.append(message)
    types = [f"expected {' or '.join(whats)}, got {got}" for got, whats in expected.items()]
    return " or ".join(types + others)


def problems_from_pydantic(error: ValidationError, prefix: str = "") -> list[Problem]:
    """pydantic's errors as problems; the alternatives of one union become one problem."""
    merged: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        path = _path(item["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        message = _message(item)
        if message not in merged.setdefault(path, []):
            merged[path].append(message)
    return [Problem(path or "(document)", _merged(msgs)) for path, msgs in merged.items()]


def parse_document(doc: Any) -> tuple[MLPipeline | None, list[Problem]]:
    """Parse one YAML document as an MLPipeline; problems name the field paths."""
    if not isinstance(doc, dict):
        return None, [Problem("(document)", f"expected a {KIND} object, got {type(doc).__name__}")]
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        return None, [
            Problem(
                "(document)",
                f"not an {KIND}: expected apiVersion {API_VERSION} and kind {KIND}, got "
                f"apiVersion {quoted(doc.get('apiVersion'))} and kind {quoted(doc.get('kind'))}",
            )
        ]
    try:
        return MLPipeline.model_validate(doc), []
    except ValidationError as error:
        return None, problems_from_pydantic(error)


def validate_document(doc: Any) -> tuple[MLPipeline | None, list[Problem]]:
    """Shape and meaning of one document; the pipeline is returned only when it has no problem."""
    with gc_paused():
        return _validate_document(doc)


def _validate_document(doc: Any) -> tuple[MLPipeline | None, list[Problem]]:
    pipeline, problems = parse_document(doc)
    if pipeline is None:
        return None, problems
    problems = check_spec(pipeline.spec)
    spec_text = json.dumps(doc["spec"], separators=(",", ":"), ensure_ascii=False)
    size = len(spec_text)
    if size > MAX_SPEC_BYTES:
        problems.append(
            Problem("spec", f"is {size} bytes; a pipeline may use at most {MAX_SPEC_BYTES} bytes")
        )
    if "{{" in spec_text or "{{" in pipeline.metadata.annotations.get(ANNOTATION_GIT_REVISION, ""):
        problems = sorted([*problems, *placeholder_problems(doc)], key=_path_order)
    run_at = pipeline.metadata.annotations.get(ANNOTATION_RUN_AT)
    if run_at is not None and (error := rfc3339_error(run_at)) is not None:
        problems.insert(0, Problem(f'metadata.annotations["{ANNOTATION_RUN_AT}"]', error))
    problems += label_problems(pipeline.metadata.labels, "metadata.labels")
    name = pipeline.metadata.name
    if pipeline.spec.schedule is not None and len(name) > MAX_SCHEDULED_NAME:
        problems.insert(
            0,
            Problem(
                "metadata.name",
                f"is {len(name)} characters; a scheduled pipeline (spec.schedule) may have at "
                f"most {MAX_SCHEDULED_NAME}, as Argo refuses longer CronWorkflow names",
            ),
        )
    return (pipeline if not problems else None), problems


# --- Meaning -------------------------------------------------------------------------------------


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    message = f"unknown {kind} {quoted(name)}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f'{message} (did you mean "{close[0]}"?)'
    if known:
        shown = ", ".join(f'"{k}"' for k in known[:10])
        return f"{message}; known: {shown}{', ...' if len(known) > 10 else ''}"
    return f"{message}; none is declared"


def _duplicates(names: Iterable[str], path: str, kind: str) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            yield Problem(
                f"{path}[{i}].name", f'duplicate {kind} "{name}" (also at index {first[name]})'
            )
        else:
            first[name] = i


def check_spec(spec: MLPipelineSpec) -> list[Problem]:
    """Every semantic problem of a spec that has the right shape."""
    problems: list[Problem] = []
    problems += _duplicates((s.name for s in spec.steps), "spec.steps", "step name")
    problems += _duplicates((p.name for p in spec.parameters), "spec.parameters", "parameter")
    steps = {s.name: s for s in spec.steps}
    parameters = {p.name for p in spec.parameters}
    for i, param in enumerate(spec.parameters):
        problems += _check_text(param.value, f"spec.parameters[{i}].value", None, parameters)
    problems += _check_volumes(spec)
    volumes = volume_names(spec)
    for i, step in enumerate(spec.steps):
        problems += _check_step(spec, step, f"spec.steps[{i}]", steps, parameters)
        problems += _check_mounts(step, f"spec.steps[{i}]", volumes)
        problems += _check_fan_out(step, f"spec.steps[{i}]", steps)
    problems += _check_cycles(spec.steps, steps)
    if spec.promotion is not None:
        problems += _check_promotion(spec, steps)
        problems += _check_promotion_order(spec, steps)
        problems += _check_after_promotion(spec, steps)
    if spec.on_exit is not None:
        problems += _check_exit_step(spec, spec.on_exit, parameters)
        problems += _check_mounts(exit_as_step(spec.on_exit), "spec.onExit", volumes)
    if spec.schedule is not None:
        problems += _check_schedule(spec.schedule)
    problems += _check_suspend(spec)
    problems += _check_max_concurrent_runs(spec)
    problems += _check_cache(spec, steps)
    problems += _check_placement(spec.defaults, "spec.defaults")
    for i, step in enumerate(spec.steps):
        problems += _check_placement(step, f"spec.steps[{i}]")
    if spec.on_exit is not None:
        problems += _check_placement(spec.on_exit, "spec.onExit")
    problems += _check_run_metadata(spec)
    problems += _check_run_limits(spec)
    problems += _check_cached_mounts(spec)
    problems += _check_security(spec)
    if spec.mlflow is not None:
        problems += _check_tracking_uri(spec.mlflow.tracking_uri)
    return sorted(problems, key=_path_order)


def _check_run_limits(spec: MLPipelineSpec) -> Iterator[Problem]:
    """A limit of a step that the run's own limit always reaches first could never act: a step
    timeout longer than spec.timeout, a forEach.maxParallel above spec.parallelism."""
    if spec.timeout is not None:
        run_limit = duration_nanoseconds(spec.timeout)
        timeouts = [("spec.defaults.timeout", spec.defaults.timeout)]
        timeouts += [(f"spec.steps[{i}].timeout", s.timeout) for i, s in enumerate(spec.steps)]
        if spec.on_exit is not None:
            timeouts.append(("spec.onExit.timeout", spec.on_exit.timeout))
        for path, timeout in timeouts:
            if timeout is not None and duration_nanoseconds(timeout) > run_limit:
                yield Problem(
                    path,
                    f"{quoted(timeout)} is longer than spec.timeout {quoted(spec.timeout)}, which "
                    "stops the whole run first; make it at most as long",
                )
    if spec.parallelism is not None:
        for i, step in enumerate(spec.steps):
            max_parallel = step.for_each.max_parallel if step.for_each is not None else None
            if max_parallel is not None and max_parallel > spec.parallelism:
                yield Problem(
                    f"spec.steps[{i}].forEach.maxParallel",
                    f"{max_parallel} is more than spec.parallelism {spec.parallelism}, which "
                    "limits the iterations too; make it at most "
                    f"{spec.parallelism} or leave it out",
                )


def _path_order(problem: Problem) -> list[Any]:
    # Order "spec.steps[10]" after "spec.steps[9]".
    return [int(t) if t.isdigit() else t for t in re.split(r"\[(\d+)\]", problem.path)]


def _check_step(
    spec: MLPipelineSpec, step: Step, path: str, steps: dict[str, Step], parameters: set[str]
) -> list[Problem]:
    # Plain loops, paths built only for problems: this runs once per step of large pipelines.
    problems: list[Problem] = []
    if step.image is None and spec.image is None:
        problems.append(Problem(f"{path}.image", "required: set the step's image or spec.image"))
    if step.name == ENTRY_TEMPLATE:
        problems.append(Problem(f"{path}.name", f'"{ENTRY_TEMPLATE}" is reserved for the DAG'))
    elif step.name == PROMOTION_TASK:
        # Reserved even without spec.promotion: adding a promotion later must not rename a step.
        problems.append(
            Problem(f"{path}.name", f'"{PROMOTION_TASK}" is reserved for the promotion step')
        )
    elif step.name == EXIT_STEP and spec.on_exit is not None:
        problems.append(Problem(f"{path}.name", f'"{EXIT_STEP}" is reserved for spec.onExit'))
    for j, dep in enumerate(step.depends_on):
        if dep == step.name:
            problems.append(Problem(f"{path}.dependsOn[{j}]", "a step cannot depend on itself"))
        elif dep not in steps:
            problems.append(Problem(f"{path}.dependsOn[{j}]", _unknown("step", dep, steps)))
    inputs, outputs = step.inputs, step.outputs
    for where, items in (
        ("inputs.parameters", inputs.parameters),
        ("inputs.artifacts", inputs.artifacts),
        ("outputs.parameters", outputs.parameters),
        ("outputs.artifacts", outputs.artifacts),
    ):
        if len(items) > 1:
            kind = where.replace("s.", " ")[:-1]  # "inputs.parameters" → "input parameter"
            problems += _duplicates((item.name for item in items), f"{path}.{where}", kind)
    for j, param in enumerate(inputs.parameters):
        if param.name in PROMOTION_INPUTS.values():
            problems.append(
                Problem(
                    f"{path}.inputs.parameters[{j}].name",
                    f'"{param.name}" is reserved for the values of {{{{promotion.*}}}}',
                )
            )
        if param.from_ is not None:
            where = f"{path}.inputs.parameters[{j}].from"
            problems += _check_ref(param.from_, "parameter", where, step, steps)
        elif param.value is not None and "{{" in param.value:
            where = f"{path}.inputs.parameters[{j}].value"
            problems += _check_text(param.value, where, None, parameters, item_step=step)
    for j, artifact in enumerate(inputs.artifacts):
        if artifact.from_ is not None:
            where = f"{path}.inputs.artifacts[{j}].from"
            problems += _check_ref(artifact.from_, "artifact", where, step, steps)
        elif artifact.source is not None:
            where = f"{path}.inputs.artifacts[{j}].source"
            problems += _check_source(artifact.source, where, parameters)
    promotion = spec.promotion is not None
    mounts = step.volume_mounts
    for field, texts in (("command", step.command), ("args", step.args)):
        for j, text in enumerate(texts):
            if "{{" in text:
                where = f"{path}.{field}[{j}]"
                problems += _check_text(
                    text, where, step, parameters, promotion=promotion, mounts=mounts
                )
    for j, env in enumerate(step.env):
        if env.value and "{{" in env.value:
            where = f"{path}.env[{j}].value"
            problems += _check_text(
                env.value, where, step, parameters, promotion=promotion, mounts=mounts
            )
    problems += _check_injected_env(spec, step.env, step.mlflow_credentials, path)
    if step.when is not None:
        problems += _check_when(spec, step, f"{path}.when", parameters)
    return problems


def _check_source(source: ArtifactSource, path: str, parameters: set[str]) -> Iterator[Problem]:
    """An input artifact from outside the pipeline: a safe S3 key, an http(s) URL, a git URL
    and revision; placeholders only in the key and the URL, and only pipeline parameters."""
    if source.s3 is not None:
        where = f"{path}.s3.key"
        problem = sources.key_problem(source.s3.key)
        if problem is not None:
            yield Problem(where, problem)
        yield from _check_text(source.s3.key, where, None, parameters)
    if source.http is not None:
        where = f"{path}.http.url"
        problem = sources.url_problem(source.http.url)
        if problem is not None:
            yield Problem(where, problem)
        yield from _check_text(source.http.url, where, None, parameters)
    if source.git is not None:
        for field, text, check in (
            ("repo", source.git.repo, sources.repo_problem),
            ("revision", source.git.revision, sources.revision_problem),
        ):
            problem = (
                "cannot use placeholders; write the repository and revision as they are"
                if "{{" in text
                else check(text)
            )
            if problem is not None:
                yield Problem(f"{path}.git.{field}", problem)


def _check_when(
    spec: MLPipelineSpec, step: Step, path: str, parameters: set[str]
) -> Iterator[Problem]:
    assert step.when is not None
    try:
        condition = conditions.parse(step.when)
    except conditions.ConditionError as error:
        yield Problem(path, str(error))
        return
    for ref in conditions.references(condition):
        where = f"at position {ref.position}: placeholder {ref.text}"
        kind, name = ref.placeholder.kind, ref.placeholder.name
        if kind == "pipeline.parameters" and name not in parameters:
            yield Problem(path, f"{where}: " + _unknown("pipeline parameter", name, parameters))
        elif kind == "inputs.parameters":
            known = [p.name for p in step.inputs.parameters]
            if name not in known:
                yield Problem(path, f"{where}: " + _unknown("input parameter", name, known))
            elif run := _run_placeholder(step.inputs.parameters[known.index(name)].value):
                # Argo evaluates a condition before the run's variables reach the step.
                yield Problem(
                    path,
                    f'{where}: input parameter "{name}" uses "{run}", which a condition cannot '
                    "read",
                )
        elif kind == "promotion" and spec.promotion is None:
            yield Problem(path, f"{where}: there is no promotion (spec.promotion is not set)")


def _check_ref(
    ref: str, kind: str, path: str, step: Step, steps: dict[str, Step]
) -> Iterator[Problem]:
    source_name, output = split_ref(ref)
    if source_name == step.name:
        yield Problem(path, "a step cannot take its own output")
        return
    source = steps.get(source_name)
    if source is None:
        yield Problem(path, _unknown("step", source_name, steps))
        return
    declared = source.outputs.parameters if kind == "parameter" else source.outputs.artifacts
    names = [o.name for o in declared]
    if output not in names:
        yield Problem(path, _unknown(f'output {kind} of step "{source_name}"', output, names))


def _check_text(
    text: str,
    path: str,
    step: Step | None,
    parameters: set[str],
    item_step: Step | None = None,
    *,
    promotion: bool = False,
    on_exit: bool = False,
    mounts: list[VolumeMount] | None = None,
) -> Iterator[Problem]:
    """Placeholders of one string; `step` is None where only pipeline parameters (and, in an
    input parameter's value, `item_step`'s item) may be used, and in `spec.onExit`, which also
    has `{{pipeline.status}}`, `{{pipeline.failures}}` and `{{promotion.*}}`; `promotion` says
    whether the pipeline has `spec.promotion`; `mounts`: the volume mounts of the step or exit
    step whose text it is (None where `{{volumes.NAME.path}}` cannot be used)."""
    item_step = item_step or step
    if "{{" not in text:
        return
    if placeholders.has_unclosed(text):
        yield Problem(path, 'has a "{{" without its closing "}}"')
    for expression in placeholders.find(text):
        try:
            ref = placeholders.parse(expression)
        except placeholders.PlaceholderError as error:
            yield Problem(path, str(error))
            continue
        if ref.kind == "item" and item_step is not None:
            yield from _check_item(expression, ref.name, path, item_step)
            continue
        if ref.kind == "volumes" and mounts is not None:
            yield from _check_volume_placeholder(expression, ref.name, path, mounts)
            continue
        if ref.kind == "pipeline.parameters":
            known: Iterable[str] = parameters
            what = "pipeline parameter"
        elif ref.kind == "promotion" and (step is not None or on_exit):
            if not promotion:
                yield Problem(
                    path,
                    f'"{{{{{expression}}}}}" needs spec.promotion, which this pipeline does not '
                    "have",
                )
            continue
        elif ref.kind in ("pipeline", "run") and (on_exit or (ref.kind == "run" and item_step)):
            # {{pipeline.status}}... in the exit step; the run's time and identity in a step,
            # its input parameters' values, and the exit step.
            continue
        elif ref.kind == "pipeline":
            yield Problem(
                path, f'"{{{{{expression}}}}}" can only be used in spec.onExit, once the run ended'
            )
            continue
        elif on_exit:
            yield Problem(
                path,
                f'"{{{{{expression}}}}}" cannot be used in spec.onExit; only '
                "{{pipeline.parameters.NAME}}, {{pipeline.status}}, {{pipeline.failures}}, "
                "{{pipeline.scheduledTime}}, {{pipeline.runName}}, {{pipeline.generation}}, "
                "{{promotion.*}} and {{volumes.NAME.path}} can",
            )
            continue
        elif step is None:
            yield Problem(
                path,
                f'"{{{{{expression}}}}}" cannot be used here; only '
                "{{pipeline.parameters.NAME}} can",
            )
            continue
        else:
            io = step.inputs if ref.kind.startswith("inputs") else step.outputs
            items = io.parameters if ref.kind.endswith("parameters") else io.artifacts
            known = [item.name for item in items]
            what = ref.kind.replace("s.", " ").rstrip(
                "s"
            )  # "inputs.parameters" → "input parameter"
        if ref.name not in known:
            yield Problem(
                path, f'placeholder "{{{{{expression}}}}}": ' + _unknown(what, ref.name, known)
            )


# --- Volumes -------------------------------------------------------------------------------------

# Volumes and mount paths that Argo's executor adds to every pod it makes: a step's volume of
# the same name, or a mount on, above or below one of these paths, would clash with them.
ARGO_VOLUMES = ("var-run-argo", "tmp-dir-argo", "input-artifacts", "argoexec-bin")
ARGO_MOUNT_PATHS = ("/var/run/argo", "/argo-bin")


def volume_names(spec: MLPipelineSpec) -> list[str]:
    """What a step may mount: the volumes, then the claim templates, by name."""
    return [v.name for v in spec.volumes] + [t.name for t in spec.volume_claim_templates]


def _check_volumes(spec: MLPipelineSpec) -> Iterator[Problem]:
    yield from _duplicates((v.name for v in spec.volumes), "spec.volumes", "volume name")
    yield from _duplicates(
        (t.name for t in spec.volume_claim_templates),
        "spec.volumeClaimTemplates",
        "claim template name",
    )
    volumes = {v.name: i for i, v in enumerate(spec.volumes)}
    named = [(f"spec.volumes[{i}]", v.name) for i, v in enumerate(spec.volumes)]
    for i, template in enumerate(spec.volume_claim_templates):
        path = f"spec.volumeClaimTemplates[{i}]"
        named.append((path, template.name))
        if (index := volumes.get(template.name)) is not None:
            yield Problem(
                f"{path}.name",
                f"{quoted(template.name)} is also the name of spec.volumes[{index}]; volumes and "
                "claim templates share one set of names",
            )
    for path, name in named:
        if name in ARGO_VOLUMES:
            yield Problem(
                f"{path}.name",
                f"{quoted(name)} is reserved: Argo's executor adds a volume of that name to "
                f"every pod (reserved: {', '.join(ARGO_VOLUMES)})",
            )


def _inside(path: str, directory: str) -> bool:
    """Whether a normalised absolute path is `directory` or below it."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _clash(mount: str, other: str) -> str | None:
    """How a mount path clashes with another path: equal, contains it, or is inside it."""
    if mount == other:
        return "is"
    if _inside(other, mount):
        return "contains"
    if _inside(mount, other):
        return "is inside"
    return None


def _check_mounts(step: Step, path: str, volumes: list[str]) -> Iterator[Problem]:
    """A step's (or the exit step's) volume mounts: known volumes, one mount a path, no clash
    with the step's artifacts or Argo's own mounts."""
    mount_paths: dict[str, int] = {}
    artifacts = [
        (f"inputs.artifacts[{k}]", a.path) for k, a in enumerate(step.inputs.artifacts)
    ] + [(f"outputs.artifacts[{k}]", a.path) for k, a in enumerate(step.outputs.artifacts)]
    for j, mount in enumerate(step.volume_mounts):
        where = f"{path}.volumeMounts[{j}]"
        if mount.name not in volumes:
            defined = (
                f"defined volumes: {', '.join(volumes)}"
                if volumes
                else "no volume is defined (spec.volumes, spec.volumeClaimTemplates)"
            )
            yield Problem(f"{where}.name", f"unknown volume {quoted(mount.name)}; {defined}")
        mount_path = posixpath.normpath(mount.mount_path)
        if mount_path == "/":
            yield Problem(f"{where}.mountPath", "cannot be /, the root of the container")
            continue
        if mount_path in mount_paths:
            yield Problem(
                f"{where}.mountPath",
                f"{quoted(mount.mount_path)} is also the mountPath of "
                f"volumeMounts[{mount_paths[mount_path]}]; mount one volume at a path",
            )
        else:
            mount_paths[mount_path] = j
        for field, artifact_path in artifacts:
            how = _clash(mount_path, posixpath.normpath(artifact_path))
            if how is not None:
                yield Problem(
                    f"{where}.mountPath",
                    f"{quoted(mount.mount_path)} {how} the path of {field} "
                    f"({quoted(artifact_path)}); Argo places artifacts on the container's own "
                    "filesystem: choose paths apart",
                )
        for reserved in ARGO_MOUNT_PATHS:
            how = _clash(mount_path, reserved)
            if how is not None:
                yield Problem(
                    f"{where}.mountPath",
                    f"{quoted(mount.mount_path)} {how} {reserved}, where Argo's executor mounts "
                    "its own volume",
                )


def _check_volume_placeholder(
    expression: str, name: str, path: str, mounts: list[VolumeMount]
) -> Iterator[Problem]:
    """`{{volumes.NAME.path}}`: the step mounts NAME, once."""
    count = sum(m.name == name for m in mounts)
    if count == 1:
        return
    shown = f'placeholder "{{{{{expression}}}}}"'
    if count > 1:
        yield Problem(
            path,
            f"{shown}: the step mounts volume {quoted(name)} {count} "
            "times; write the mount path itself",
        )
        return
    mounted = ", ".join(dict.fromkeys(m.name for m in mounts)) or "none"
    yield Problem(
        path, f"{shown}: the step does not mount volume {quoted(name)} (it mounts: {mounted})"
    )


def _check_cached_mounts(spec: MLPipelineSpec) -> Iterator[Problem]:
    """A cached step is not run again: what it would write on a volume would not be written, and
    its key does not hold what it reads from one."""
    for i, step in enumerate(spec.steps):
        if step.volume_mounts and step_max_age(step, spec) is not None:
            origin = "its cache" if step.cache is not None else "spec.defaults.cache"
            yield Problem(
                f"spec.steps[{i}].cache",
                f"cached ({origin}) but mounts volume {quoted(step.volume_mounts[0].name)}, whose "
                "content its cache key does not hold (and a step served from the cache writes "
                "nothing on it); set cache: {maxAge: 0s} on this step",
            )


def _check_item(expression: str, key: str, path: str, step: Step) -> Iterator[Problem]:
    """`{{item}}` or `{{item.KEY}}` in a step: it needs forEach, and a key that every literal
    item has."""
    shown = f'"{{{{{expression}}}}}"'
    if step.for_each is None:
        yield Problem(path, f"{shown} can only be used in a step with forEach")
        return
    items = step.for_each.items
    if not key or items is None:
        return  # `from`: the items are known at run time only
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            yield Problem(
                path,
                f"{shown}: item {index} ({quoted(str(item))}) is not an object; "
                "{{item.KEY}} needs every item to be an object with that key",
            )
            return
        if key not in item:
            keys = ", ".join(f'"{k}"' for k in item) or "none"
            yield Problem(path, f'{shown}: item {index} has no key "{key}" (its keys: {keys})')
            return


def _check_fan_out(step: Step, path: str, steps: dict[str, Step]) -> Iterator[Problem]:
    """forEach itself, and what other steps may take from a fanned-out step."""
    for_each = step.for_each
    if for_each is not None:
        where = f"{path}.forEach"
        if step.cache is not None and duration_nanoseconds(step.cache.max_age) > 0:
            yield Problem(
                f"{path}.cache",
                "a step with forEach is not cached (its iterations would share one cache "
                "entry); remove cache, or set cache: {maxAge: 0s}",
            )
        if for_each.items is not None and not for_each.items:
            yield Problem(
                f"{where}.items", "must not be empty: list at least one item, or use from"
            )
        if for_each.from_ is not None:
            yield from _check_ref(for_each.from_, "parameter", f"{where}.from", step, steps)
        for j, param in enumerate(step.inputs.parameters):
            if param.name == ITEM_PARAMETER or param.name.startswith(f"{ITEM_PARAMETER}-"):
                yield Problem(
                    f"{path}.inputs.parameters[{j}].name",
                    f"{quoted(param.name)} is reserved in a step with forEach (it carries the "
                    "item): choose another name",
                )
    for j, artifact in enumerate(step.inputs.artifacts):
        if artifact.from_ is None:
            continue
        source = steps.get(split_ref(artifact.from_)[0])
        if source is not None and source.for_each is not None and source is not step:
            yield Problem(
                f"{path}.inputs.artifacts[{j}].from",
                f'step "{source.name}" runs once per item (forEach), so its artifacts cannot be '
                "taken; pass an output parameter instead (its values arrive as a JSON list), "
                "for example the location where each iteration stored its file",
            )


def _check_cycles(spec_steps: list[Step], steps: dict[str, Step]) -> Iterator[Problem]:
    """Report each dependency cycle once, at the first of its steps in spec order."""
    graph = {
        s.name: [d for d in step_dependencies(s) if d in steps and d != s.name] for s in spec_steps
    }
    index = {s.name: i for i, s in reversed(list(enumerate(spec_steps)))}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        path: list[str] = [root]
        iters = [iter(graph[root])]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                first = min(cycle, key=index.__getitem__)
                k = cycle.index(first)
                ordered = [*cycle[k:], *cycle[:k], first]
                # Edges point from a step to its dependency; print them as "runs before".
                shown = " -> ".join(reversed(ordered))
                yield Problem(f"spec.steps[{index[first]}].dependsOn", f"dependency cycle: {shown}")
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(graph[nxt]))


def _check_promotion(spec: MLPipelineSpec, steps: dict[str, Step]) -> Iterator[Problem]:
    assert spec.promotion is not None
    if spec.mlflow is None:
        yield Problem("spec.mlflow", "required when spec.promotion is set (the tracking URI)")
    source = spec.promotion.from_
    step = steps.get(source.step)
    if step is None:
        yield Problem("spec.promotion.from.step", _unknown("step", source.step, steps))
    elif step.for_each is not None:
        yield Problem(
            "spec.promotion.from.step",
            f'step "{source.step}" runs once per item (forEach); promote from one run id: add a '
            "step that takes its output parameter (a JSON list) and writes the chosen run's id",
        )
    elif source.parameter not in {p.name for p in step.outputs.parameters}:
        yield Problem(
            "spec.promotion.from.parameter",
            _unknown(
                f'output parameter of step "{source.step}"',
                source.parameter,
                [p.name for p in step.outputs.parameters],
            ),
        )


def _check_cache(spec: MLPipelineSpec, steps: dict[str, Step]) -> Iterator[Problem]:
    """A cached step's key stands for its upstream steps' results only when those are cached
    too: a step that runs every time may give other outputs each time."""
    default = spec.defaults.cache
    if default is not None and duration_nanoseconds(default.max_age) == 0:
        yield Problem(
            "spec.defaults.cache.maxAge",
            f"{quoted(default.max_age)} caches nothing; set a longer maxAge, or remove "
            "spec.defaults.cache (a step turns caching off with cache: {maxAge: 0s})",
        )
    for i, step in enumerate(spec.steps):
        if step_max_age(step, spec) is None:
            continue
        origin = "its cache" if step.cache is not None else "spec.defaults.cache"
        texts = [*step_texts(step), *(p.value or "" for p in step.inputs.parameters)]
        if (run := next(filter(None, map(_run_placeholder, texts)), None)) is not None:
            yield Problem(
                f"spec.steps[{i}].cache",
                f'cached ({origin}) but uses "{run}", whose value the cache key does not cover '
                "(a result would be reused for another value); remove the placeholder or set "
                "cache: {maxAge: 0s} on this step",
            )
        for dep in step_dependencies(step):
            upstream = steps.get(dep)
            if upstream is not None and step_max_age(upstream, spec) is None:
                if upstream.for_each is not None:
                    yield Problem(
                        f"spec.steps[{i}].cache",
                        f'cached ({origin}) but depends on step "{dep}", which has forEach and '
                        "is never cached; set cache: {maxAge: 0s} on this step",
                    )
                    continue
                yield Problem(
                    f"spec.steps[{i}].cache",
                    f'cached ({origin}) but depends on step "{dep}", which is not cached and '
                    f'may give other outputs at each run; cache "{dep}" too, or set '
                    "cache: {maxAge: 0s} on this step",
                )


def _run_placeholder(text: str | None) -> str | None:
    """The first `{{pipeline.scheduledTime}}`, `{{pipeline.runName}}` or `{{pipeline.generation}}`
    of a text, as written in the pipeline's terms; None when it uses none."""
    for expression in placeholders.find(text or ""):
        try:
            ref = placeholders.parse(expression)
        except placeholders.PlaceholderError:
            continue
        if ref.kind == "run":
            return f"{{{{pipeline.{ref.name}}}}}"
    return None


def _check_promotion_order(spec: MLPipelineSpec, steps: dict[str, Step]) -> Iterator[Problem]:
    """A step whose condition reads the promotion runs after it: the promotion cannot need it."""
    after = after_promotion(spec.steps)
    if not after:
        return
    assert spec.promotion is not None
    source = spec.promotion.from_.step
    needed, todo = set(), [source]
    while todo:
        name = todo.pop()
        if name in needed or name not in steps:
            continue
        needed.add(name)
        todo += step_dependencies(steps[name])
    if any(uses_promotion(s) for s in spec.steps if s.name in needed):
        return  # _check_after_promotion reports this cycle, at the field that makes it
    for i, step in enumerate(spec.steps):
        if step.name in needed and step.name in after:
            yield Problem(
                f"spec.steps[{i}]",
                "runs after the promotion (its condition, or one of a step it depends on, reads "
                f'{{{{promotion.*}}}}), but the promotion takes its model from step "{source}", '
                "which needs this step first",
            )


def _check_after_promotion(spec: MLPipelineSpec, steps: dict[str, Step]) -> Iterator[Problem]:
    """A step that uses `{{promotion.*}}` runs after the promotion: it cannot be the promotion's
    source, nor anything the source depends on."""
    assert spec.promotion is not None
    source = spec.promotion.from_.step
    # The source and everything upstream of it, each with the step it is a dependency of.
    downstream_of: dict[str, str | None] = {source: None}
    todo = [source]
    while todo:
        name = todo.pop()
        if (step := steps.get(name)) is None:
            continue
        for dependency in step_dependencies(step):
            if dependency not in downstream_of:
                downstream_of[dependency] = name
                todo.append(dependency)
    for i, step in enumerate(spec.steps):
        if uses_promotion(step) and step.for_each is not None:
            yield Problem(
                f"spec.steps[{i}].forEach",
                "cannot be used with {{promotion.*}} in the same step; read the decision in a "
                "step of its own, and make this one depend on it",
            )
        if uses_promotion(step) and step_max_age(step, spec) is not None:
            origin = "its cache" if step.cache is not None else "spec.defaults.cache"
            yield Problem(
                f"spec.steps[{i}].cache",
                f"cached ({origin}) but uses {{{{promotion.*}}}}, whose values its cache key "
                "does not hold; set cache: {maxAge: 0s} on this step",
            )
        if step.name not in downstream_of or not uses_promotion(step):
            continue
        chain = [step.name]
        while (nxt := downstream_of[chain[-1]]) is not None:
            chain.append(nxt)
        cycle = " -> ".join([PROMOTION_TASK, *chain, PROMOTION_TASK])
        field = _promotion_field(step)
        yield Problem(
            f"spec.steps[{i}].{field}",
            f"uses {{{{promotion.*}}}}, so it runs after the promotion, which needs it first "
            f"(promotion.from.step {quoted(source)}): dependency cycle: {cycle}",
        )


def _promotion_field(step: Step) -> str:
    """The first field of a step that uses `{{promotion.*}}`, as a path below the step."""
    fields = [f"command[{j}]" for j in range(len(step.command))]
    fields += [f"args[{j}]" for j in range(len(step.args))]
    fields += [f"env[{j}].value" for j, e in enumerate(step.env) if e.value is not None]
    for field, text in zip(fields, step_texts(step), strict=True):
        if placeholders.uses([text], "promotion"):
            return field
    return "command"


def _check_exit_step(
    spec: MLPipelineSpec, exit_step: ExitStep, parameters: set[str]
) -> Iterator[Problem]:
    path = "spec.onExit"
    if exit_step.image is None and spec.image is None:
        yield Problem(f"{path}.image", "required: set the exit step's image or spec.image")
    promotion = spec.promotion is not None
    texts = [(f"command[{j}]", t) for j, t in enumerate(exit_step.command)]
    texts += [(f"args[{j}]", t) for j, t in enumerate(exit_step.args)]
    texts += [(f"env[{j}].value", e.value) for j, e in enumerate(exit_step.env) if e.value]
    for field, text in texts:
        yield from _check_text(
            text,
            f"{path}.{field}",
            None,
            parameters,
            promotion=promotion,
            on_exit=True,
            mounts=exit_step.volume_mounts,
        )
    yield from _check_injected_env(spec, exit_step.env, exit_step.mlflow_credentials, path)


_RESERVED_ENV = ", ".join(n for n in RUN_TAGS)


def _check_injected_env(
    spec: MLPipelineSpec, env: list[EnvVar], mlflow_credentials: bool, path: str
) -> Iterator[Problem]:
    """The variables the operator adds to every step (`lineage`) are its own: a step may not set
    one; and MLflow's credentials reach a step only from spec.mlflow.credentialsSecret."""
    for j, var in enumerate(env):
        if var.name.startswith(RESERVED_ENV_PREFIX):
            yield Problem(
                f"{path}.env[{j}].name",
                f'"{var.name}": names starting with {RESERVED_ENV_PREFIX} are reserved for the '
                f"variables set in every step ({_RESERVED_ENV}); choose another name",
            )
        elif var.name == ENV_TRACKING_URI and var.value_from is not None and spec.mlflow:
            # Argo merges the Workflow's templateDefaults by name: value and valueFrom would
            # both be set, which Kubernetes refuses.
            yield Problem(
                f"{path}.env[{j}].valueFrom",
                f"{ENV_TRACKING_URI} is spec.mlflow.trackingUri in every step, which a step "
                "replaces with a literal value only; set value instead",
            )
    if not mlflow_credentials:
        return
    if spec.mlflow is None:
        yield Problem(
            f"{path}.mlflowCredentials",
            "spec.mlflow is not set: set spec.mlflow with its credentialsSecret, or remove "
            "mlflowCredentials",
        )
    elif not spec.mlflow.credentials_secret:
        yield Problem(
            f"{path}.mlflowCredentials",
            "spec.mlflow.credentialsSecret is not set: name the Secret of MLflow's credentials "
            "there, or remove mlflowCredentials",
        )


def _check_schedule(schedule: Schedule) -> Iterator[Problem]:
    error = cron_error(schedule.cron)
    if error:
        yield Problem("spec.schedule.cron", error)
    try:
        zoneinfo.ZoneInfo(schedule.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        yield Problem(
            "spec.schedule.timezone",
            f"unknown time zone {quoted(schedule.timezone)}; use an "
            'IANA name such as "UTC" or "Europe/Paris"',
        )


def _check_suspend(spec: MLPipelineSpec) -> Iterator[Problem]:
    # One switch per kind of pipeline: a CronWorkflow has its own (spec.schedule.suspend).
    if spec.suspend and spec.schedule is not None:
        yield Problem(
            "spec.suspend",
            "a scheduled pipeline is suspended with spec.schedule.suspend, not spec.suspend",
        )


def _check_max_concurrent_runs(spec: MLPipelineSpec) -> Iterator[Problem]:
    # Argo's controller starts a schedule's runs: its concurrencyPolicy is the one in force.
    if spec.max_concurrent_runs is not None and spec.schedule is not None:
        yield Problem(
            "spec.maxConcurrentRuns",
            "a scheduled pipeline's runs are limited by spec.schedule.concurrencyPolicy, "
            "not spec.maxConcurrentRuns",
        )


# --- Placement and labels, checked as the API server checks a Pod's -----------------------------

MAX_INT64 = 2**63 - 1
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)
# Label prefixes of the operator (its own labels, and the copies of the pipeline's) and of Argo.
RESERVED_LABEL_DOMAINS = (GROUP, ARGO_GROUP)


def label_key_error(key: str) -> str | None:
    """Why Kubernetes refuses a label key ("[prefix/]name"), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return f"{quoted(key)} is not a label key: the prefix before '/' is empty"
    if slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return (
            f"{quoted(key)} is not a label key: its prefix {quoted(prefix)} must be a DNS "
            "subdomain of at most 253 characters (lower-case letters, digits, '-' and '.')"
        )
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f"{quoted(key)} is not a label key: its name {quoted(name)} must have 1 to 63 "
            "characters (letters, digits, '-', '_' and '.'), starting and ending with a letter "
            "or digit"
        )
    return None


def label_value_error(value: str) -> str | None:
    """Why Kubernetes refuses a label value, or None."""
    if value == "" or (len(value) <= 63 and _LABEL_NAME.match(value)):
        return None
    return (
        f"{quoted(value)} is not a label value: at most 63 characters (letters, digits, '-', "
        "'_' and '.'), starting and ending with a letter or digit"
    )


def label_problems(labels: dict[str, str], path: str) -> Iterator[Problem]:
    for key, value in labels.items():
        error = label_key_error(key) or label_value_error(value)
        if error:
            yield Problem(f"{path}.{key}", error)


def _check_placement(holder: Defaults | Step | ExitStep, path: str) -> Iterator[Problem]:
    if holder.node_selector:
        yield from label_problems(holder.node_selector, f"{path}.nodeSelector")
    for j, toleration in enumerate(holder.tolerations or ()):
        yield from _check_toleration(toleration, f"{path}.tolerations[{j}]")
    if holder.affinity is not None:
        yield from _check_affinity(holder.affinity, f"{path}.affinity")
    name = holder.priority_class_name
    if name and not _DNS_SUBDOMAIN.match(name):
        yield Problem(
            f"{path}.priorityClassName",
            f"{quoted(name)} is not a PriorityClass name: use lower-case letters, digits, '-' "
            "and '.', starting and ending with a letter or digit",
        )


def _check_toleration(toleration: Toleration, path: str) -> Iterator[Problem]:
    # Kubernetes' rules (ValidateTolerations); an unset operator means Equal.
    exists = toleration.operator == "Exists"
    if toleration.key:
        if (error := label_key_error(toleration.key)) is not None:
            yield Problem(f"{path}.key", error)
    elif not exists:
        yield Problem(
            f"{path}.operator",
            "must be Exists when the key is empty (a toleration of every taint)",
        )
    if exists and toleration.value:
        yield Problem(
            f"{path}.value",
            "must be empty with operator Exists (which tolerates any value); remove it, or use "
            "operator Equal",
        )
    elif toleration.value and (error := label_value_error(toleration.value)) is not None:
        yield Problem(f"{path}.value", error)
    seconds = toleration.toleration_seconds
    if seconds is not None and seconds > MAX_INT64:
        yield Problem(
            f"{path}.tolerationSeconds", f"{seconds} is over {MAX_INT64}, the most it takes"
        )
    if seconds is not None and toleration.effect != "NoExecute":
        yield Problem(
            f"{path}.tolerationSeconds",
            "applies only to effect NoExecute (the time a pod stays once the taint appears); "
            "set effect: NoExecute or remove it",
        )


def _check_requirement(
    requirement: NodeSelectorRequirement | LabelSelectorRequirement, path: str, *, field: bool
) -> Iterator[Problem]:
    if field:
        if requirement.key != "metadata.name":
            yield Problem(
                f"{path}.key", f'{quoted(requirement.key)}: matchFields takes only "metadata.name"'
            )
    elif (error := label_key_error(requirement.key)) is not None:
        yield Problem(f"{path}.key", error)
    values, operator = requirement.values or [], requirement.operator
    if operator in ("In", "NotIn") and not values:
        yield Problem(f"{path}.values", f"operator {operator} needs at least one value")
    elif operator in ("Exists", "DoesNotExist") and values:
        yield Problem(f"{path}.values", f"must be empty with operator {operator}")
    elif operator in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
        yield Problem(f"{path}.values", f"operator {operator} needs exactly one integer value")
    else:
        for k, value in enumerate(values):
            if (error := label_value_error(value)) is not None:
                yield Problem(f"{path}.values[{k}]", error)


def _check_node_term(term: NodeSelectorTerm, path: str) -> Iterator[Problem]:
    for k, requirement in enumerate(term.match_expressions or ()):
        yield from _check_requirement(requirement, f"{path}.matchExpressions[{k}]", field=False)
    for k, requirement in enumerate(term.match_fields or ()):
        yield from _check_requirement(requirement, f"{path}.matchFields[{k}]", field=True)


def _check_label_selector(selector: LabelSelector | None, path: str) -> Iterator[Problem]:
    if selector is None:
        return
    yield from label_problems(selector.match_labels or {}, f"{path}.matchLabels")
    for k, requirement in enumerate(selector.match_expressions or ()):
        yield from _check_requirement(requirement, f"{path}.matchExpressions[{k}]", field=False)


def _check_pod_affinity(affinity: PodAffinity | None, path: str) -> Iterator[Problem]:
    if affinity is None:
        return
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    terms = [
        (f"{path}.{required}[{k}]", term)
        for k, term in enumerate(affinity.required_during_scheduling_ignored_during_execution or ())
    ]
    terms += [
        (f"{path}.{preferred}[{k}].podAffinityTerm", weighted.pod_affinity_term)
        for k, weighted in enumerate(
            affinity.preferred_during_scheduling_ignored_during_execution or ()
        )
    ]
    for where, term in terms:
        yield from _check_label_selector(term.label_selector, f"{where}.labelSelector")
        yield from _check_label_selector(term.namespace_selector, f"{where}.namespaceSelector")
        if (error := label_key_error(term.topology_key)) is not None:
            yield Problem(f"{where}.topologyKey", error)


def _check_affinity(affinity: Affinity, path: str) -> Iterator[Problem]:
    node = affinity.node_affinity
    if node is not None:
        where = f"{path}.nodeAffinity"
        required = node.required_during_scheduling_ignored_during_execution
        for k, term in enumerate(required.node_selector_terms if required else ()):
            yield from _check_node_term(
                term,
                f"{where}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{k}]",
            )
        for k, preferred in enumerate(
            node.preferred_during_scheduling_ignored_during_execution or ()
        ):
            yield from _check_node_term(
                preferred.preference,
                f"{where}.preferredDuringSchedulingIgnoredDuringExecution[{k}].preference",
            )
    yield from _check_pod_affinity(affinity.pod_affinity, f"{path}.podAffinity")
    yield from _check_pod_affinity(affinity.pod_anti_affinity, f"{path}.podAntiAffinity")


def _reserved_domain(key: str) -> str | None:
    prefix = key.rpartition("/")[0]
    for domain in RESERVED_LABEL_DOMAINS:
        if prefix == domain or prefix.endswith(f".{domain}"):
            return domain
    return None


def _check_run_metadata(spec: MLPipelineSpec) -> Iterator[Problem]:
    for j, secret in enumerate(spec.image_pull_secrets or ()):
        if not _DNS_SUBDOMAIN.match(secret.name):
            yield Problem(
                f"spec.imagePullSecrets[{j}].name",
                f"{quoted(secret.name)} is not a Secret name: use lower-case letters, digits, "
                "'-' and '.', starting and ending with a letter or digit",
            )
    names = (s.name for s in spec.image_pull_secrets or ())
    yield from _duplicates(names, "spec.imagePullSecrets", "secret")
    labels = spec.run_labels or {}
    yield from label_problems(labels, "spec.runLabels")
    for key in labels:
        domain = _reserved_domain(key)
        if domain is not None or key == LABEL_MANAGED_BY:
            owner = "Argo's" if domain == ARGO_GROUP else "the operator's"
            yield Problem(
                f"spec.runLabels.{key}",
                f"uses {owner} own label {'prefix ' + domain if domain else 'key'}, which a run "
                "label may not set; choose another key",
            )


# --- Placeholders in every other field ---------------------------------------------------------

# The fields whose placeholders `check_spec` checks (each with the ones it takes), as a tree of
# the spec's JSON ("[]": every item of a list). In every other string a `{{` is refused: Argo's
# controller, shared by every namespace, would evaluate `{{workflow.*}}` or `{{=expression}}`.
_Tree = dict[str, "_Tree | bool"]
_PLACEHOLDER_FIELDS: _Tree = {
    "parameters": {"[]": {"value": True}},
    "steps": {
        "[]": {
            "command": True,
            "args": True,
            "env": {"[]": {"value": True}},
            "inputs": {
                "parameters": {"[]": {"value": True}},
                # An external source's key and URL take pipeline parameters; its git fields
                # have a message of their own (`_check_source`).
                "artifacts": {
                    "[]": {
                        "source": {
                            "s3": {"key": True},
                            "http": {"url": True},
                            "git": {"repo": True, "revision": True},
                        }
                    }
                },
            },
            "when": True,
        }
    },
    "onExit": {"command": True, "args": True, "env": {"[]": {"value": True}}},
}


def placeholder_problems(doc: dict[str, Any]) -> list[Problem]:
    """A problem for each field outside `_PLACEHOLDER_FIELDS` that holds a `{{`, and for the
    git-revision annotation (copied to the runs)."""
    problems = list(_strings_with_braces(doc.get("spec"), _PLACEHOLDER_FIELDS, "spec"))
    revision = (doc.get("metadata") or {}).get("annotations", {}).get(ANNOTATION_GIT_REVISION)
    if isinstance(revision, str) and "{{" in revision:
        path = f'metadata.annotations["{ANNOTATION_GIT_REVISION}"]'
        problems.append(Problem(path, _no_placeholder(revision)))
    return problems


def _strings_with_braces(node: Any, tree: _Tree | bool | None, path: str) -> Iterator[Problem]:
    if tree is True:
        return
    subtree = tree if isinstance(tree, dict) else None
    if isinstance(node, str):
        if "{{" in node:
            yield Problem(path, _no_placeholder(node))
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings_with_braces(
                value, subtree.get(key) if subtree else None, f"{path}.{key}"
            )
    elif isinstance(node, list):
        item_tree = subtree.get("[]") if subtree else None
        for index, item in enumerate(node):
            yield from _strings_with_braces(item, item_tree, f"{path}[{index}]")


def _no_placeholder(text: str) -> str:
    found = placeholders.find(text)
    shown = f'"{{{{{found[0]}}}}}"' if found else '"{{"'
    return (
        f"{shown} cannot be used here: this field takes no placeholder (Argo's controller "
        "would evaluate it); write the value itself"
    )


# --- Security contexts, checked as Kubernetes checks a Pod's ----------------------------------


def _check_seccomp(profile: SeccompProfile | None, path: str) -> Iterator[Problem]:
    if profile is None:
        return
    if profile.type == "Localhost" and profile.localhost_profile is None:
        yield Problem(
            f"{path}.localhostProfile", "required with type Localhost (the profile's file)"
        )
    elif profile.type != "Localhost" and profile.localhost_profile is not None:
        yield Problem(
            f"{path}.localhostProfile",
            f"must not be set with type {profile.type}; it is for type Localhost only",
        )


def _check_security(spec: MLPipelineSpec) -> Iterator[Problem]:
    pod = spec.pod_security_context or PodSecurityContext()
    pod_path = "spec.podSecurityContext"
    yield from _check_seccomp(pod.seccomp_profile, f"{pod_path}.seccompProfile")
    for i, step in enumerate(spec.steps):
        container = step.security_context or SecurityContext()
        path = f"spec.steps[{i}].securityContext"
        yield from _check_seccomp(container.seccomp_profile, f"{path}.seccompProfile")
        # What the container runs as: its own field, else the pod's, else the default's.
        non_root = next(
            v for v in (container.run_as_non_root, pod.run_as_non_root, True) if v is not None
        )
        if non_root and container.run_as_user == 0:
            yield Problem(
                f"{path}.runAsUser",
                "0 (root) with runAsNonRoot, which refuses to start the container; set a "
                "non-zero user, or runAsNonRoot: false",
            )
        elif non_root and container.run_as_user is None and pod.run_as_user == 0 and i == 0:
            yield Problem(
                f"{pod_path}.runAsUser",
                "0 (root) with runAsNonRoot, which refuses to start the containers; set a "
                "non-zero user, or runAsNonRoot: false",
            )
        added = (container.capabilities.add or []) if container.capabilities else []
        if container.allow_privilege_escalation is not True and "CAP_SYS_ADMIN" in added:
            yield Problem(
                f"{path}.capabilities.add",
                "CAP_SYS_ADMIN needs allowPrivilegeEscalation: true (false by default); "
                "Kubernetes refuses the pair",
            )


# --- The tracking URI ----------------------------------------------------------------------------

_LOOPBACK_HOSTS = frozenset({"localhost", "::1"})
_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local")


def _check_tracking_uri(uri: str) -> Iterator[Problem]:
    parts = urllib.parse.urlsplit(uri)
    if "@" in parts.netloc:
        yield Problem(
            "spec.mlflow.trackingUri",
            "has credentials in it (USER:PASSWORD@), which every reader of the pipeline and "
            "its runs would see; remove them and put them in the Secret named by "
            "spec.mlflow.credentialsSecret (MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD)",
        )


def in_cluster_host(host: str) -> bool:
    """Whether a host name stays inside the cluster: a Service (`name`, `name.namespace`,
    `*.svc`, `*.svc.cluster.local`, which a pod's DNS search path resolves there first) or
    the loopback."""
    host = host.lower().rstrip(".")
    if host in _LOOPBACK_HOSTS or host.startswith("127."):
        return True
    # An IPv4 address has three dots; an IPv6 one has colons.
    return host.endswith(_CLUSTER_SUFFIXES) or (host.count(".") <= 1 and ":" not in host)


def warnings(pipeline: MLPipeline) -> list[Problem]:
    """What a valid pipeline may mean to do but likely does not: shown, never refused."""
    found: list[Problem] = []
    mlflow = pipeline.spec.mlflow
    if mlflow is not None:
        parts = urllib.parse.urlsplit(mlflow.tracking_uri)
        if parts.scheme == "http" and not in_cluster_host(parts.hostname or ""):
            found.append(
                Problem(
                    "spec.mlflow.trackingUri",
                    f"plain http to {quoted(parts.hostname or '')}, outside the cluster: the "
                    "promotion's MLflow credentials would cross the network unencrypted; use "
                    "https",
                )
            )
    return found


# --- Cron, as Argo's parser (robfig/cron, standard form) reads it ------------------------------

_DESCRIPTORS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_EVERY = re.compile(r"^@every ([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$")


def cron_error(expression: str) -> str | None:
    """Why Argo would refuse a cron expression, or None when it is valid."""
    expr = expression.strip()
    if expr.startswith("@"):
        if expr in _DESCRIPTORS or _EVERY.match(expr):
            return None
        return (
            f"{quoted(expr)} is not a known descriptor; use @yearly, @monthly, @weekly, @daily, "
            "@hourly or @every DURATION"
        )
    fields = expr.split()
    if len(fields) != 5:
        return (
            f"{quoted(expr)} has {len(fields)} fields; a cron expression has 5: minute hour "
            "day-of-month month day-of-week"
        )
    for text, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        for part in text.split(","):
            error = _cron_part_error(part.lower(), low, high, names)
            if error:
                return f"{name} {quoted(text)}: {error} (allowed {low}-{high})"
    return None


def _cron_part_error(part: str, low: int, high: int, names: dict[str, int]) -> str | None:
    base, _, step = part.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return f'bad step "/{step}"'
    if base in ("*", "?"):
        return None
    bounds = base.split("-")
    if len(bounds) > 2 or not all(bounds):
        return f'"{part}" is not a number, a name or a range'
    values = []
    for bound in bounds:
        value = names.get(bound, int(bound) if bound.isdigit() else None)
        if value is None:
            return f'"{bound}" is not a number or a name'
        if not low <= value <= high:
            return f"{value} is out of range"
        values.append(value)
    if len(values) == 2 and values[0] > values[1]:
        return f'range "{base}" runs backwards'
    return None
