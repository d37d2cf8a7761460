"""Configuration: the schema documents and defaults every key; errors name the key."""

from __future__ import annotations

import copy

import pytest
from conftest import REPO

from samcrowd.config import check_config, load_dataset, load_schema, load_yaml, validate
from samcrowd.errors import SamcrowdError


def test_embedded_default_and_btcv_preset_are_valid():
    check_config(load_yaml(REPO / "config.yaml"))
    btcv = check_config(load_yaml(REPO / "config/btcv.yaml"))
    assert btcv["organs"] == {"spleen": 1, "right_kidney": 2, "left_kidney": 3, "liver": 6, "aorta": 8}
    layout = validate(load_dataset("btcv")["dataset"], load_schema("config")["properties"]["dataset"], "dataset")
    assert layout["split"]["train"] == [1, 2, 7, 10, 21, 23, 24, 27, 28, 29, 30, 32, 33, 34, 40]
    assert layout["split"]["test"] == [3, 4, 5, 6, 8, 9, 22, 25, 26, 31, 35, 36, 37, 38, 39]


def test_schema_defaults_equal_config_yaml_except_the_demos_nnunet_budget():
    # the schema's defaults are a real study's; config.yaml differs only where a CPU demo must
    defaults = check_config({})
    demo = check_config(load_yaml(REPO / "config.yaml"))
    differs = {key for key in defaults["nnunet"] if defaults["nnunet"][key] != demo["nnunet"][key]}
    assert differs == {"configuration", "trainer", "folds", "threads", "deterministic", "train_resources"}
    assert (defaults["nnunet"]["configuration"], defaults["nnunet"]["trainer"], defaults["nnunet"]["folds"]) == (
        "3d_fullres",
        "nnUNetTrainer",
        5,
    )
    defaults.pop("nnunet"), demo.pop("nnunet")
    assert defaults == demo


def test_every_setting_is_described():
    def walk(schema, where):
        for key, sub in schema.get("properties", {}).items():
            assert sub.get("description") or where.startswith("dataset.split"), f"{where}{key} has no description"
            walk(sub, f"{where}{key}.")

    walk(load_schema("config"), "")
    walk(load_schema("cases"), "")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"exportt": {}}, "unknown key 'exportt'"),
        ({"export": {"evry": 2}}, "unknown key 'export.evry'"),
        ({"export": {"every": 0}}, "key 'export.every': 0 is less than the minimum of 1"),
        ({"phantom": {"shape": [160, 160]}}, "key 'phantom.shape'"),
        ({"phantom": {"orientations": ["LAX"]}}, "key 'phantom.orientations.0'"),
        ({"phantom": {"orientations": ["LLS"]}}, "'LLS' is not an orientation"),
        ({"data": {"source": "folder"}}, "key 'data.source': 'folder' is not one of"),
        ({"organs": {"Liver": 6}}, "unknown key 'organs.Liver'"),
        ({"organs": {"liver": 6, "spleen": 6}}, "label value 6 is given to more than one organ"),
        ({"organs": {"liver": 0}}, "key 'organs.liver': 0 is less than the minimum of 1"),
        ({"segmenter": {"kind": "sam"}}, "key 'segmenter.checkpoint': segmenter.kind sam needs a checkpoint path"),
        (
            {"segmenter": {"kind": "medsam", "checkpoint": "medsam_vit_b.pth", "model_type": "vit_h"}},
            "key 'segmenter.model_type': segmenter.kind medsam takes vit_b, test_tiny, not vit_h",
        ),
        ({"campaign": {"stride": 0}}, "key 'campaign.stride': 0 is less than the minimum of 1"),
        ({"fusion": {"fill": {"min_score": 1.5}}}, "key 'fusion.fill.min_score': 1.5 is greater than the maximum of 1"),
        ({"fusion": {"fill": {"max_growth": 0.5}}}, "key 'fusion.fill.max_growth': 0.5 is less than the minimum of 1"),
        ({"fusion": {"completion": "nearest"}}, "key 'fusion.completion': 'nearest' is not one of"),
        (
            {"export": {"every": 2}},
            "key 'fusion.completion': filling by the segmenter asks about exported slices, and with export.every 2 "
            "1 of every 2 slices have no image to start from (set export.every: 1, or fusion.completion: distance)",
        ),
        (
            {"campaign": {"plan": True, "stride": 3}, "fusion": {"completion": "none"}},
            "key 'fusion.completion': campaign.stride 3 leaves 2 of every 3 slices unboxed for completion to fill, "
            "and fusion.completion is none (use segmenter or distance)",
        ),
    ],
)
def test_a_bad_key_or_value_is_reported_by_name(change, message):
    config = copy.deepcopy(load_yaml(REPO / "config.yaml"))
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict) and key != "organs":
            config[key].update(value)
        else:
            config[key] = value
    with pytest.raises(SamcrowdError) as e:
        check_config(config)
    assert message in str(e.value)
    assert str(e.value).startswith("config: ")
    assert "\n" not in str(e.value)


def test_a_simulated_profile_with_a_stride_needs_completion_and_a_stride_below_one_is_refused():
    config = copy.deepcopy(load_yaml(REPO / "config.yaml"))
    config["fusion"]["completion"] = "none"
    config["crowd"]["profiles"]["careful"]["stride"] = 4
    with pytest.raises(SamcrowdError) as e:
        check_config(copy.deepcopy(config))
    assert str(e.value) == (
        "config: key 'fusion.completion': crowd.profiles.careful.stride 4 leaves 3 of every 4 slices unboxed for "
        "completion to fill, and fusion.completion is none (use segmenter or distance)"
    )
    config["fusion"]["completion"] = "distance"
    check_config(copy.deepcopy(config))  # distance interpolation fills them
    config["crowd"]["profiles"]["careful"]["stride"] = 0
    with pytest.raises(SamcrowdError) as e:
        check_config(config)
    assert str(e.value).startswith("config: key 'crowd.profiles.careful.stride': 0 is less than the minimum of 1 (")


def test_yaml_syntax_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("export:\n  every: 1\n   body_only: [\n")
    with pytest.raises(SamcrowdError, match=r"c\.yaml:3: invalid YAML"):
        load_yaml(bad)


def test_validate_fills_defaults_in_place():
    config = {"export": {"every": 3}}
    validate(config, load_schema("config"))
    assert config["export"] == {
        "every": 3,
        "window_level": 40,
        "window_width": 400,
        "body_only": False,
        "splits": ["train"],
    }
    assert config["data"]["source"] == "phantom"


def test_the_schemas_name_cases_and_annotators_with_the_one_identifier_pattern():
    from samcrowd.identifiers import IDENTIFIER

    def patterns(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern":
                    yield value
                elif key == "patternProperties":
                    yield from value
                    yield from (x for v in value.values() for x in patterns(v))
                else:
                    yield from patterns(value)
        elif isinstance(node, list):
            for item in node:
                yield from patterns(item)

    found = [p for name in ("config", "cases") for p in patterns(load_schema(name)) if "[A-Za-z0-9][A-Za-z0-9_-]" in p]
    assert len(found) == 3 and set(found) == {f"^{IDENTIFIER}$"}


def test_litemedsam_needs_no_checkpoint_path_its_weights_ship_in_its_package():
    config = copy.deepcopy(load_yaml(REPO / "config.yaml"))
    config["segmenter"].update(kind="litemedsam", checkpoint="")
    check_config(config)


def test_every_schema_node_uses_only_json_schema_keywords():
    # a flow mapping whose description holds ", " splits it into a bogus keyword (caught once, in random_walker)
    keywords = {
        "$schema", "title", "description", "type", "properties", "patternProperties", "additionalProperties",
        "required", "default", "enum", "minimum", "maximum", "exclusiveMinimum", "pattern", "minLength",
        "items", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties",
    }  # fmt: skip

    def nodes(schema, where):
        yield where, schema
        children = [*schema.get("properties", {}).items(), *schema.get("patternProperties", {}).items()]
        if isinstance(schema.get("additionalProperties"), dict):
            children.append(("<additional>", schema["additionalProperties"]))
        if isinstance(schema.get("items"), dict):
            children.append(("<items>", schema["items"]))
        for key, sub in children:
            yield from nodes(sub, f"{where}.{key}")

    for name in ("config", "cases"):
        for where, node in nodes(load_schema(name), name):
            assert set(node) <= keywords, f"{where}: not JSON Schema keywords: {sorted(set(node) - keywords)}"


def test_the_configuration_reference_in_the_docs_is_the_one_the_schemas_generate():
    from samcrowd.config import reference

    written = (REPO / "docs/configuration.md").read_text(encoding="utf-8")
    assert written == reference(), "docs/configuration.md is stale: samcrowd config-reference > docs/configuration.md"
    for key in ("segmenter.kind", "crowd.profiles.<name>.jitter_px", "nnunet.train_resources.mem_mb", "`split`"):
        assert key in written


def test_the_functions_jobs_call_take_every_setting_without_a_default_of_their_own():
    # defaults live in the schema only: a library default would hide a setting the job forgot to pass
    import ast
    import importlib
    import inspect

    optional = {
        "class_overrides",
        "known_cases",
        "threads",
        "embeddings",
        "encoder_ir",
        "decoder_ir",
        "processes",
        "out_html",
    }
    # inputs and outputs that only some configurations have (a campaign plan, a zip), never a setting
    optional |= {"assignment", "assigned", "labels", "zip_path", "out_table", "out_coverage"}
    called = {}
    for script in sorted((REPO / "scripts").glob("*.py")):
        tree = ast.parse(script.read_text())
        imported = {
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == "samcrowd"
            for a in n.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if isinstance(node.func.value, ast.Name) and node.func.value.id in imported:
                    module = importlib.import_module(f"samcrowd.{node.func.value.id}")
                    called[f"{module.__name__}.{node.func.attr}"] = getattr(module, node.func.attr)
    assert len(called) >= 25
    defaulted = {
        name: sorted(p for p, v in inspect.signature(f).parameters.items() if v.default is not inspect.Parameter.empty)
        for name, f in called.items()
        if inspect.isfunction(f) or inspect.ismethod(f)
    }
    assert {name: set(params) - optional for name, params in defaulted.items() if set(params) - optional} == {}
