"""Packaging: exact pins in one place, every import the jobs make declared, the two set-up commands."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from conftest import REPO


def pins(requirements):
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;]+)", req.strip())
        assert m, f"not an exact pin: {req!r}"
        out[normalized(m[1])] = m[3]
    return out


def pyproject_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return pins(project["dependencies"]), pins(project["optional-dependencies"]["test"])


def test_every_runtime_dependency_is_pinned_exactly():
    runtime, test = pyproject_pins()
    for name in (
        "torch",
        "torchvision",
        "snakemake",
        "segment-anything",
        "nnunetv2",
        "nibabel",
        "numpy",
        "scipy",
        "pandas",
        "simpleitk",
        "scikit-image",
        "matplotlib",
        "tqdm",
        "defusedxml",
    ):
        assert name in runtime, name
    assert runtime["torch"] == "2.14.1" and runtime["torchvision"] == "0.29.1"
    assert runtime["snakemake"].startswith("9.")
    assert "pytest" in test


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(path: Path) -> set[str]:
    """Every module a Python file imports, at top level or inside functions (absolute imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def third_party_imports(entry_points: list[Path]) -> dict[str, set[str]]:
    """{top-level third-party module: files importing it}, following imports through samcrowd."""
    seen, todo, out = set(), list(entry_points), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top == "samcrowd":
                spec = importlib.util.find_spec(module) if _is_module(module) else None
                if spec and spec.origin and spec.origin.endswith(".py"):
                    todo.append(Path(spec.origin))
            elif top not in sys.stdlib_module_names and top != "__future__":
                out.setdefault(top, set()).add(path.name)
    return out


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_every_rule_runs_in_the_one_conda_env_which_repeats_the_pyproject_pins_and_installs_samcrowd():
    env = yaml.safe_load((REPO / "envs" / "samcrowd.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    runtime, _ = pyproject_pins()
    assert pins([p for p in pip_section if not p.startswith("-e ")]) == runtime
    assert "-e ${SAMCROWD_SOURCE}" in pip_section and "python=3.11" in env["dependencies"]
    assert 'os.environ.setdefault("SAMCROWD_SOURCE", workflow.basedir)' in (REPO / "rules/common.smk").read_text()
    assert sorted(p.name for p in (REPO / "envs").iterdir()) == ["samcrowd.yaml"]
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        assert text.count("script:") == len(re.findall(r'conda:\s*\n\s*"../envs/samcrowd.yaml"', text)), smk.name


def test_every_module_the_jobs_import_comes_from_a_declared_dependency():
    runtime, _ = pyproject_pins()
    scripts = sorted(
        {
            REPO / "rules" / s
            for smk in (REPO / "rules").glob("*.smk")
            for s in re.findall(r'script:\s*\n\s*"([^"]+)"', smk.read_text())
        }
    )
    assert len(scripts) >= 20 and all(s.is_file() for s in scripts)
    trainers = sorted((REPO / "samcrowd" / "nnunet_trainers").glob("*.py"))  # imported by nnU-Net's jobs
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, users in third_party_imports([*map(Path.resolve, scripts), *trainers]).items():
        dists = {normalized(d) for d in providers.get(module, [])}
        if not dists & set(runtime):
            undeclared[module] = (sorted(dists), sorted(users))
    assert not undeclared, f"imported by the jobs but not a dependency in pyproject.toml: {undeclared}"


def test_console_script_is_installed():
    assert shutil.which("samcrowd") or (REPO / ".venv/bin/samcrowd").exists()


def test_readme_gives_exactly_the_two_setup_commands_that_ci_uses():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (REPO / ".ci/run").read_text()
    assert re.search(r"^make test\b", ci, re.M)
    assert re.search(r"^make lint\b", ci, re.M), "CI runs make lint (ruff, snakefmt, snakemake --lint)"


def test_the_litemedsam_install_hint_names_the_pinned_release():
    from samcrowd import litemedsam

    runtime, _ = pyproject_pins()
    name, version = litemedsam.REQUIREMENT.split("==")
    assert runtime[name] == version and name == litemedsam.PACKAGE


def test_a_wheel_installed_outside_the_checkout_imports_every_module_and_validates_a_config(tmp_path):
    """`pip install` of a built wheel into a fresh venv: samcrowd stands alone (schemas, dataset
    layouts and nnU-Net trainers inside the package; nothing read from the checkout)."""
    run = functools.partial(
        subprocess.run,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    source = tmp_path / "source"  # what a clean checkout holds: git's files, no build leftovers
    listed = run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    for name in filter(None, listed.stdout.split("\0")):
        if (REPO / name).is_file() and not name.startswith("tests/data/"):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    built = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ]
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("samcrowd-*.whl"))
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    # the dependencies come from this environment's site-packages, whose .pth files (samcrowd's
    # editable install among them) are not read from a directory added this way
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "dependencies.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    installed = run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin/python"),
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
        ]
    )
    assert installed.returncode == 0, installed.stderr
    code = """
import importlib, pkgutil, samcrowd
from samcrowd import config, nnunet
assert samcrowd.__file__.startswith({!r}), samcrowd.__file__
names = [m.name for m in pkgutil.walk_packages(samcrowd.__path__, "samcrowd.")]
for name in names:
    importlib.import_module(name)
settings = config.check_config(config.load_yaml({!r}))
assert settings["segmenter"]["kind"] == "litemedsam"
assert config.load_dataset("btcv")["dataset"]["name"] == "BTCV"
assert (nnunet.TRAINERS / "samcrowd_nnunet_trainers.py").is_file()
print(len(names), "modules")
""".format(str(site), str(REPO / "config.yaml"))
    checked = run([str(venv / "bin/python"), "-c", code])
    assert checked.returncode == 0, checked.stderr
    assert int(checked.stdout.split()[0]) >= 25
    version = run([str(venv / "bin/samcrowd"), "--version"])
    assert version.returncode == 0 and version.stdout.startswith("samcrowd "), version.stderr
