"""Small HTML pages for the Snakemake report, which shows HTML results inline (TSV only downloads)."""

from __future__ import annotations

from html import escape


def markdown_rows(markdown: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a Markdown pipe table."""
    lines = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in markdown.strip().splitlines()
        if line.strip().startswith("|")
    ]
    return lines[0], lines[2:]


def html_table(header: list[str], rows: list[list[str]], title: str, note: str = "") -> str:
    """A stand-alone HTML page with one table."""

    def cells(row, tag):
        return "".join(f"<{tag}>{escape(str(c))}</{tag}>" for c in row)

    body = "\n".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{escape(title)}</title><style>"
        "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}"
        f"</style></head><body><h2>{escape(title)}</h2>\n<table><thead><tr>{cells(header, 'th')}</tr></thead>"
        f"<tbody>\n{body}\n</tbody></table>\n" + (f"<p>{escape(note)}</p>" if note else "") + "</body></html>\n"
    )
