"""Configuration: JSON-Schema validation with defaults, and one-line errors naming the key.

The schemas (package data in samcrowd/schemas/) are the single description of every setting (type, range,
default, meaning). `validate` fills in defaults and, on the first problem, raises a
SamcrowdError such as ``config: key 'export.every': 0 is less than the minimum of 1``.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from samcrowd import segmenters
from samcrowd.errors import SamcrowdError


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file, naming file and line on a syntax error."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise SamcrowdError("file not found", path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SamcrowdError(
            f"invalid YAML: {getattr(e, 'problem', e)}", path, None if mark is None else mark.line + 1
        ) from None


def load_configs(files: list[str | Path]) -> dict[str, Any]:
    """Config files merged in order, later keys over earlier ones, sections merged key by key
    (as Snakemake merges config.yaml and each --configfile)."""

    def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
        for key, value in top.items():
            base[key] = (
                merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
            )
        return base

    merged: dict[str, Any] = {}
    for path in files:
        loaded = load_yaml(path) or {}
        if not isinstance(loaded, dict):
            raise SamcrowdError("a config file must be a mapping of sections", path)
        merge(merged, loaded)
    return merged


def load_schema(name: str) -> dict[str, Any]:
    """One of the package's schemas by name ('config' or 'cases')."""
    return yaml.safe_load(resources.files("samcrowd.schemas").joinpath(f"{name}.schema.yaml").read_text("utf-8"))


def load_dataset(name: str) -> dict[str, Any]:
    """A public dataset's layout shipped with the package (its `dataset` section), e.g. 'btcv'."""
    return yaml.safe_load(resources.files("samcrowd.datasets").joinpath(f"{name}.yaml").read_text("utf-8"))


def _defaults_filling(cls):
    """A validator class that sets each missing property to its schema default first."""
    check_properties = cls.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": properties})


_Validator = _defaults_filling(jsonschema.Draft202012Validator)


def validate(
    instance: Any, schema: dict[str, Any], what: str = "config", path: str | None = None, line: int | None = None
) -> Any:
    """Fill defaults into `instance` in place and check it; raise one SamcrowdError naming the key."""
    errors = list(_Validator(schema).iter_errors(instance))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        raise SamcrowdError(f"{what}: {describe(error)}", path, line)
    return instance


def describe(error: jsonschema.ValidationError) -> str:
    """A one-line account of a schema violation that names the offending key."""
    key = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
        extra = sorted(k for k in error.instance if k not in known and not any(p.search(k) for p in patterns))
        name = ".".join(filter(None, [key, str(extra[0]) if extra else "?"]))
        allowed = ", ".join(sorted(known)) or "none"
        return f"unknown key '{name}' (allowed here: {allowed})"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing key '{'.'.join(filter(None, [key, missing]))}'"
    hint = error.schema.get("description") if isinstance(error.schema, dict) else None
    text = f"key '{key}': {error.message}" if key else error.message
    return f"{text} ({hint.strip().rstrip('.')})" if hint else text


def check_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate a workflow config (defaults filled in place) plus what a schema cannot say."""
    validate(config, load_schema("config") if schema is None else schema, "config")
    values = list(config["organs"].values())
    duplicated = sorted({v for v in values if values.count(v) > 1})
    if duplicated:
        raise SamcrowdError(f"config: key 'organs': label value {duplicated[0]} is given to more than one organ")
    for code in config["phantom"]["orientations"]:
        if not is_orientation(code):
            raise SamcrowdError(
                f"config: key 'phantom.orientations': '{code}' is not an orientation "
                "(one of L/R, one of A/P, one of S/I, in any order)"
            )
    organs = set(config["organs"])
    for name, organ in config["annotations"]["classes"].items():
        if organ not in organs:
            raise SamcrowdError(f"config: key 'annotations.classes.{name}': '{organ}' is not an organ of 'organs'")
    profiles = config["crowd"]["profiles"]
    for annotator, profile in config["crowd"]["annotators"].items():
        if profile not in profiles:
            raise SamcrowdError(
                f"config: key 'crowd.annotators.{annotator}': no profile '{profile}' in crowd.profiles "
                f"({', '.join(sorted(profiles))})"
            )
    for name, profile in profiles.items():
        for organ in profile.get("miss_rate_by_organ", {}):
            if organ not in organs:
                raise SamcrowdError(f"config: key 'crowd.profiles.{name}.miss_rate_by_organ.{organ}': not an organ")
    ids = {s: config["nnunet"]["dataset_ids"][s] for s in config["nnunet"]["sources"]}
    taken: dict[int, str] = {}
    for source, dataset_id in ids.items():
        if dataset_id in taken:
            raise SamcrowdError(
                f"config: key 'nnunet.dataset_ids.{source}': id {dataset_id} is also {taken[dataset_id]}'s"
            )
        taken[dataset_id] = source
    if config["nnunet"]["sources"] and config["stats"]["reference"] not in config["nnunet"]["sources"]:
        raise SamcrowdError(
            f"config: key 'stats.reference': '{config['stats']['reference']}' is not one of "
            f"nnunet.sources {config['nnunet']['sources']}"
        )
    check_completion(config)
    seg = config["segmenter"]
    segmenter = segmenters.SEGMENTERS[seg["kind"]]
    if segmenter.needs_checkpoint and not segmenter.ships_weights and not seg["checkpoint"]:
        raise SamcrowdError(f"config: key 'segmenter.checkpoint': segmenter.kind {seg['kind']} needs a checkpoint path")
    if segmenter.model_types and seg["model_type"] not in segmenter.model_types:
        raise SamcrowdError(
            f"config: key 'segmenter.model_type': segmenter.kind {seg['kind']} takes "
            f"{', '.join(segmenter.model_types)}, not {seg['model_type']}"
        )
    return config


def sparse_strides(config: dict[str, Any]) -> dict[str, int]:
    """{config key: stride} of every setting that boxes only every n-th slice (n > 1): the campaign's,
    and the simulated profiles' that annotators use."""
    strides = {}
    if config["campaign"]["plan"] and config["campaign"]["stride"] > 1:
        strides["campaign.stride"] = config["campaign"]["stride"]
    if config["annotations"]["source"] == "simulate" and not config["campaign"]["plan"]:
        for name in sorted(set(config["crowd"]["annotators"].values())):
            stride = config["crowd"]["profiles"][name].get("stride", 1)
            if stride > 1:
                strides[f"crowd.profiles.{name}.stride"] = stride
    return strides


def check_completion(config: dict[str, Any]) -> None:
    """Completion must be able to fill what the annotators leave out: refuse a sparse campaign or crowd
    without completion, and filling by the segmenter where slices were not exported (no image to ask)."""
    fusion, every = config["fusion"], config["export"]["every"]
    if fusion["completion"] == "segmenter" and every > 1:
        raise SamcrowdError(
            f"config: key 'fusion.completion': filling by the segmenter asks about exported slices, and with "
            f"export.every {every} {every - 1} of every {every} slices have no image to start from "
            "(set export.every: 1, or fusion.completion: distance)"
        )
    strides = sparse_strides(config)
    if fusion["completion"] == "none" and strides:
        key, stride = next(iter(strides.items()))
        raise SamcrowdError(
            f"config: key 'fusion.completion': {key} {stride} leaves {stride - 1} of every {stride} slices "
            "unboxed for completion to fill, and fusion.completion is none (use segmenter or distance)"
        )


def is_orientation(code: str) -> bool:
    """True for a nibabel axis code naming each patient axis once, e.g. 'LAS' or 'PIR'."""
    axis = {"L": 0, "R": 0, "A": 1, "P": 1, "S": 2, "I": 2}
    return len(code) == 3 and all(c in axis for c in code) and sorted(axis[c] for c in code) == [0, 1, 2]


# ----------------------------------------------------------------------------- reference


REFERENCE_INTRO = """\
# Configuration reference

Generated from the package's schemas (`samcrowd/schemas/config.schema.yaml` and
`cases.schema.yaml`) by `samcrowd config-reference > docs/configuration.md`; a test fails when
this file and the schemas disagree. `<name>` stands for a key you choose (an organ, an
annotator, a profile).

`config.yaml` is the embedded default; presets (`config/*.yaml`) and `--configfile` / `--config`
go on top of it. The Snakefile validates the merged config before building the DAG, and missing
keys take the defaults below, which are a real study's: they equal `config.yaml` except for the
demo's CPU nnU-Net budget (`nnunet.configuration`, `trainer`, `folds`, `threads`,
`deterministic`, `train_resources`). A bad key or value stops the run with one line, e.g.

```
config: key 'export.every': 0 is less than the minimum of 1 (Export every n-th slice only)
config: unknown key 'export.evry' (allowed here: body_only, every, splits, window_level, window_width)
cases.tsv:4: case 'img0001' is defined twice (first on line 2)
```
"""


def reference() -> str:
    """Every setting of the config and every column of the case sheet as Markdown tables."""
    config, cases = load_schema("config"), load_schema("cases")
    parts = [REFERENCE_INTRO]
    for section, schema in config["properties"].items():
        parts.append(f"## `{section}`\n\n{_cell(schema.get('description', ''))}\n")
        rows = list(_rows(schema, section)) if _is_object(schema) else [(section, schema)]
        parts.append(_table(rows))
    parts.append(f"## The case sheet\n\n{_cell(cases['description'])} Columns:\n")
    parts.append(_table([(name, sub) for name, sub in cases["properties"].items()], required=cases["required"]))
    return "\n".join(parts)


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" and any(
        isinstance(schema.get(k), dict) and schema[k]
        for k in ("properties", "patternProperties", "additionalProperties")
    )


def _rows(schema: dict[str, Any], where: str):
    """(dotted key, schema) of every leaf setting below `schema`, in the schema's order."""
    children = list(schema.get("properties", {}).items())
    children += [("<name>", sub) for sub in schema.get("patternProperties", {}).values()]
    if isinstance(schema.get("additionalProperties"), dict):
        children.append(("<name>", schema["additionalProperties"]))
    for key, sub in children:
        name = f"{where}.{key}"
        if _is_object(sub):
            if sub.get("description"):
                yield name, {"type": "object", "description": sub["description"], "default": sub.get("default")}
            yield from _rows(sub, name)
        else:
            yield name, sub


def _table(rows, required: list[str] | None = None) -> str:
    head = "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n"
    lines = []
    for name, sub in rows:
        default = (
            "required"
            if required is not None and name in required
            else (f"`{json.dumps(sub['default'])}`" if sub.get("default") not in (None, {}) else "")
        )
        lines.append(
            f"| `{name}` | {_type(sub)} | {_cell(default)} | {_cell(_allowed(sub))} | {_cell(sub.get('description', ''))} |"
        )
    return head + "\n".join(lines) + "\n"


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"list of {schema['items'].get('type', 'any')}"
    return kind if isinstance(kind, str) else " or ".join(kind)


def _allowed(schema: dict[str, Any]) -> str:
    """The constraints of a value (enum, range, pattern, length), in words."""
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    parts = []
    for node, prefix in ((schema, ""), (items, "each ")):
        if "enum" in node:
            parts.append(prefix + ", ".join(f"`{v}`" for v in node["enum"]))
        bounds = [
            f"≥ {node['minimum']}" if "minimum" in node else "",
            f"> {node['exclusiveMinimum']}" if "exclusiveMinimum" in node else "",
            f"≤ {node['maximum']}" if "maximum" in node else "",
        ]
        if any(bounds):
            parts.append(prefix + " and ".join(b for b in bounds if b))
        if "pattern" in node:
            parts.append(f"{prefix}matches `{node['pattern']}`")
    if "minItems" in schema and schema.get("minItems") == schema.get("maxItems"):
        parts.append(f"{schema['minItems']} items")
    elif "minItems" in schema:
        parts.append(f"at least {schema['minItems']} item{'s' if schema['minItems'] > 1 else ''}")
    if schema.get("uniqueItems"):
        parts.append("no repeats")
    return "; ".join(parts)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
