"""Packaging: pinned dependencies agree everywhere; the two set-up commands exist."""

from __future__ import annotations

import re
import shutil
import tomllib

import yaml

from samcrowd.config import REPO


def pins(requirements):
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;]+)", req.strip())
        assert m, f"not an exact pin: {req!r}"
        out[m[1].lower().replace("_", "-")] = m[3]
    return out


def pyproject_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return pins(project["dependencies"]), pins(project["optional-dependencies"]["test"])


def test_every_runtime_dependency_is_pinned_exactly():
    runtime, test = pyproject_pins()
    for name in ("torch", "torchvision", "snakemake", "segment-anything", "nnunetv2", "nibabel", "numpy",
                 "scipy", "pandas", "simpleitk", "scikit-image", "matplotlib", "tqdm", "defusedxml"):
        assert name in runtime, name
    assert runtime["torch"] == "2.14.1" and runtime["torchvision"] == "0.29.1"
    assert runtime["snakemake"].startswith("9.")
    assert "pytest" in test


def test_conda_envs_repeat_the_pyproject_pins():
    runtime, _ = pyproject_pins()
    seen = set()
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(env_file.read_text())
        pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        for name, version in pins(pip_section).items():
            assert runtime.get(name) == version, f"{env_file.name}: {name}=={version}, pyproject: {runtime.get(name)}"
            seen.add(name)
    assert seen == set(runtime), f"pinned in pyproject but in no env: {set(runtime) - seen}"


def test_every_rule_names_an_existing_conda_env():
    for smk in (REPO / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env}"


def test_console_script_is_installed():
    assert shutil.which("samcrowd") or (REPO / ".venv/bin/samcrowd").exists()


def test_readme_gives_exactly_the_two_setup_commands_that_ci_uses():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (REPO / ".ci/run").read_text()
    assert re.search(r"^make test\b", ci, re.M)


def test_the_litemedsam_install_hint_names_the_pinned_release():
    from samcrowd import litemedsam

    runtime, _ = pyproject_pins()
    name, version = litemedsam.REQUIREMENT.split("==")
    assert runtime[name] == version and name == litemedsam.PACKAGE
