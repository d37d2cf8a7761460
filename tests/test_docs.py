"""The docs a newcomer walks: a short README whose workflow picture is the real DAG, pages whose
links lead somewhere, and a module map that names every module."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO, snakemake

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def stage_of_rule() -> dict[str, str]:
    """rule name -> the rules/<stage>.smk that defines it."""
    return {
        rule: smk.stem
        for smk in sorted((REPO / "rules").glob("*.smk"))
        for rule in re.findall(r"^\s*rule (\w+):", smk.read_text(), re.M)
    }


def test_the_readme_stays_short_and_names_every_page_of_the_docs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README does not lead to docs/{page.name}"


def test_the_readmes_workflow_picture_is_the_rule_graph_by_stage(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    picture = re.search(r"```mermaid\n(.*?)```", readme, re.S).group(1)
    drawn_edges = set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", picture, re.M))
    drawn_rules = {
        stage: sorted(re.split(r"(?:,|<br/>|\s)+", rules))
        for stage, rules in re.findall(r'^\s*(\w+)\["\w+<br/>(.*)"\]', picture, re.M)
    }
    stage = stage_of_rule()
    assert drawn_rules == {s: sorted(r for r, s2 in stage.items() if s2 == s) for s in set(stage.values())}

    plan = tmp_path / "plan.yaml"
    plan.write_text("campaign: {plan: true}\ncluster: {max_job_minutes: 60}\n")  # nnU-Net folds train in rounds
    run = snakemake(tmp_path, "--rulegraph", "mermaid-js", "--configfile", str(REPO / "config.yaml"), str(plan))
    assert run.returncode == 0, run.stderr
    names = dict(re.findall(r"^\s*(id\d+)\[(\w+)\]", run.stdout, re.M))
    edges = [(names[a], names[b]) for a, b in re.findall(r"^\s*(id\d+) --> (id\d+)", run.stdout, re.M)]
    # the embedded default with a campaign plan, under a time limit, runs every rule
    assert set(names.values()) == {*stage, "all"}
    by_stage = {(stage[a], stage[b]) for a, b in edges if b != "all" and stage[a] != stage[b]}
    assert drawn_edges == by_stage


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_every_link_between_the_pages_leads_to_a_file_and_heading_that_exist():
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), re.M)
                if anchor not in {slug(h) for h in headings}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_the_module_map_names_every_module_of_the_library_and_no_other():
    text = (REPO / "docs/architecture.md").read_text(encoding="utf-8")
    table = text[text.index("## Module map") : text.index("## How data flows")]
    mapped = set(re.findall(r"^\| [^|]+ \| `(\w+)` \|", table, re.M))
    modules = {p.stem for p in (REPO / "samcrowd").glob("*.py") if p.stem != "__init__"}
    packages = {p.parent.name for p in (REPO / "samcrowd").glob("*/*.py")} - {"schemas", "datasets"}
    assert mapped == modules | packages


def test_no_page_points_at_readme_sections_that_moved_to_the_docs():
    for path in [
        *PAGES,
        *(REPO / "samcrowd").rglob("*.py"),
        *(REPO / "samcrowd").rglob("*.yaml"),
        *(REPO / "profiles").rglob("*.yaml"),
    ]:
        text = Path(path).read_text(encoding="utf-8")
        assert not re.search(r"README, \"|README\.md#(?!which-library)", text), path
