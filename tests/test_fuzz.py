"""Fuzzed annotation input: every YOLO or VOC file, however broken, either parses to boxes inside
the image (one box per box line or <object>, none dropped) or fails with samcrowd's own error
naming the file, and the line where there is one. Never another exception.

Examples per test are fixed (derandomised, so CI is repeatable); together they are over 2,000.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from samcrowd import boxes, export, io
from samcrowd.errors import SamcrowdError
from samcrowd.openlabeling import PRESETS, parse_voc, parse_yolo, write_class_list

CLASSES = ["spleen", "right_kidney", "left_kidney", "liver", "aorta"]
W, H = 64, 48


def fuzz_settings(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


numbers = st.one_of(
    st.floats(-0.5, 1.5).map(lambda v: f"{v:.6f}"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-3, 600).map(str),
    st.sampled_from(["1e400", "-1e400", "nan", "-inf", "Infinity", "0", "-0", ".5", "5.", "1e-9", "0x10", "1_0"]),
    st.text(alphabet="0123456789.eE+-", max_size=8),
)
junk = st.text(max_size=8)
spaces = st.sampled_from([" ", "\t", "  ", " \t", "\x0c", "\u00a0", "\u2003"])
newlines = st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\x1c", "\u2028"])


fmt = st.sampled_from([repr, str, "{:.6f}".format, "{:e}".format, "{:.3g}".format, lambda v: f"{v:.17f}"])


@st.composite
def yolo_files(draw) -> str:
    """Mostly well-formed lines with odd values, some with odd structure; odd separators."""
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 19))
        if kind < 14:  # what OpenLabeling writes, in any float format
            fields = [
                str(draw(st.integers(0, len(CLASSES) - 1))),
                *(draw(fmt)(draw(st.floats(0, 1))) for _ in range(2)),
                *(draw(fmt)(draw(st.floats(0.02, 1))) for _ in range(2)),
            ]
        elif kind < 17:
            fields = [draw(st.integers(-1, 7).map(str) | junk), *(draw(numbers) for _ in range(4))]
        elif kind < 19:
            fields = draw(st.lists(numbers | junk, max_size=7))
        else:
            fields = []
        lines.append(draw(spaces).join(fields))
    return draw(newlines).join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


def valid_yolo() -> bytes:
    return b"0 0.5 0.5 0.25 0.25\r\n3 0.30 0.60 0.10 0.20\r\n\r\n4 0.9 0.1 0.2 0.2\r\n"


def valid_voc() -> bytes:
    return (
        b"<annotation>\n  <folder>PNG</folder>\n  <filename>c_0003.png</filename>\n"
        b"  <size>\n    <width>64</width>\n    <height>48</height>\n    <depth>3</depth>\n  </size>\n"
        b"  <object>\n    <name>liver</name>\n    <bndbox>\n      <xmin>3</xmin>\n      <ymin>4</ymin>\n"
        b"      <xmax>30</xmax>\n      <ymax>20</ymax>\n    </bndbox>\n  </object>\n"
        b"  <object>\n    <name>aorta</name>\n    <bndbox>\n      <xmin>40</xmin>\n      <ymin>30</ymin>\n"
        b"      <xmax>70</xmax>\n      <ymax>47</ymax>\n    </bndbox>\n  </object>\n</annotation>\n"
    )


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """`seed` with a few random byte insertions, deletions and replacements."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(
            st.sampled_from(list(b"\n\r\t .-+e0123456789"))
            if draw(st.integers(0, 3))
            else st.one_of(st.integers(0, 255), st.sampled_from(list(b"<>/&;\"'")))
        )
        if op == "insert":
            data.insert(pos, byte)
        elif data and pos < len(data):
            if op == "delete":
                del data[pos]
            else:
                data[pos] = byte
    return bytes(data)


def lines_of(text: str) -> list[str]:
    """Lines as an editor numbers them: broken at LF, CRLF or a lone CR, nowhere else."""
    return re.split(r"\r\n|\r|\n", text)


def assert_own_error(error: SamcrowdError, path: Path, n_lines: int | None) -> None:
    assert error.path == str(path) and str(error).startswith(str(path))
    if error.line is not None and n_lines is not None:
        assert 1 <= error.line <= n_lines, (error.line, n_lines)


def assert_inside(found, width: int, height: int) -> None:
    for box in found:
        assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height, box


def check_yolo(path: Path, data: bytes, rounding: str) -> None:
    path.write_bytes(data)
    try:
        parsed = parse_yolo(path, CLASSES, W, H, rounding)
    except SamcrowdError as e:
        text = data.decode("utf-8", errors="replace")
        assert_own_error(e, path, len(lines_of(text)))
        event("refused")
        return
    event("parsed" if parsed.boxes else "parsed, no box")
    text = data.decode("utf-8")
    box_lines = [i for i, line in enumerate(lines_of(text), 1) if line.split()]
    assert [b.line for b in parsed.boxes] == box_lines  # one box per non-blank line, in order
    assert all(b.cls in CLASSES for b in parsed.boxes)
    assert_inside(parsed.boxes, W, H)


@fuzz_settings(900)
@given(text=yolo_files(), rounding=st.sampled_from(["round", "truncate"]))
def test_fuzzed_yolo_lines_parse_inside_the_image_or_fail_naming_file_and_line(tmp_path, text, rounding):
    check_yolo(tmp_path / "c_0003.txt", text.encode("utf-8"), rounding)


@fuzz_settings(400)
@given(data=mutated(valid_yolo()), rounding=st.sampled_from(["round", "truncate"]))
def test_mutated_yolo_bytes_parse_inside_the_image_or_fail_naming_the_file(tmp_path, data, rounding):
    check_yolo(tmp_path / "c_0003.txt", data, rounding)


@st.composite
def voc_files(draw) -> tuple[str, int]:
    """A VOC document with odd sizes, values and elements; (text, number of <object>s)."""

    def element(tag: str, value: str) -> str:
        return f"<{tag}>{escape(value)}</{tag}>"

    def value(typical):
        return draw(typical) if draw(st.integers(0, 9)) < 8 else draw(numbers | junk)

    parts = ["<annotation>", element("folder", "PNG")]
    size_parts = [
        element(tag, value(st.sampled_from(["64", "48", "64.0"]) | st.integers(1, 100).map(str)))
        for tag in ("width", "height")
        if draw(st.integers(0, 9)) > 0
    ]
    if draw(st.integers(0, 9)) == 0 and size_parts:
        size_parts.append(size_parts[0])  # a repeated element
    parts.append("<size>" + "".join(size_parts) + "</size>")
    n_objects = draw(st.integers(0, 4))
    for _ in range(n_objects):
        fields = [element("name", draw(st.sampled_from(CLASSES)) if draw(st.integers(0, 9)) else draw(junk))]
        x0, y0 = draw(st.integers(-5, 60)), draw(st.integers(-5, 45))
        corners = {"xmin": x0, "ymin": y0, "xmax": x0 + draw(st.integers(0, 40)), "ymax": y0 + draw(st.integers(0, 30))}
        for tag, typical in corners.items():
            if draw(st.integers(0, 19)) > 0:
                fields.append(element(tag, value(st.just(typical).map(str) | st.integers(-10, 110).map(str))))
        if draw(st.integers(0, 9)) == 0:
            fields.append(draw(st.sampled_from(fields)))  # a repeated element
        body = fields[0] + "<bndbox>" + "".join(fields[1:]) + "</bndbox>"
        if draw(st.integers(0, 9)) == 0:
            body += "<part>" + element("name", "hand") + "<bndbox>" + element("xmin", "1") + "</bndbox></part>"
        parts.append(f"<object>{body}</object>")
    parts.append("</annotation>")
    return draw(st.sampled_from(["\n", "", "\r\n"])).join(parts), n_objects


def check_voc(path: Path, data: bytes, rounding: str, n_objects: int | None) -> None:
    path.write_bytes(data)
    try:
        parsed, (width, height) = parse_voc(path, rounding)
    except SamcrowdError as e:
        assert_own_error(e, path, len(lines_of(data.decode("utf-8", errors="replace"))))
        event("refused")
        return
    event("parsed" if parsed.boxes else "parsed, no box")
    assert width >= 1 and height >= 1
    if n_objects is not None:
        assert len(parsed.boxes) == n_objects  # no <object> dropped
    assert all(b.cls.strip() and b.cls == b.cls.strip() for b in parsed.boxes)
    assert_inside(parsed.boxes, width, height)


@fuzz_settings(700)
@given(doc=voc_files(), rounding=st.sampled_from(["round", "truncate"]))
def test_fuzzed_voc_files_parse_inside_the_image_or_fail_naming_the_file(tmp_path, doc, rounding):
    text, n_objects = doc
    check_voc(tmp_path / "c_0003.xml", text.encode("utf-8"), rounding, n_objects)


@fuzz_settings(500)
@given(data=mutated(valid_voc()), rounding=st.sampled_from(["round", "truncate"]))
def test_mutated_voc_bytes_parse_inside_the_image_or_fail_naming_the_file(tmp_path, data, rounding):
    check_voc(tmp_path / "c_0003.xml", data, rounding, None)


@pytest.fixture(scope="module")
def exported_case(tmp_path_factory):
    """A small exported case 'c' (64 x 48 PNGs, 6 slices) and its frame for the project naming."""
    import numpy as np

    folder = tmp_path_factory.mktemp("case")
    io.save_volume(folder / "c.nii.gz", np.zeros((64, 48, 6), np.int16), np.diag([0.8, 0.8, 3.0, 1.0]))
    manifest = export.export_case(
        case="c",
        image_path=folder / "c.nii.gz",
        out_dir=folder / "png",
        manifest_path=folder / "c.manifest.json",
        **export.settings(),
    )
    return boxes.frame_from_manifest(manifest, PRESETS["project"])


name_chars = string.ascii_letters + string.digits + "_-. ~#%()[]{}'&$!@+=,;äé中\u202e"


@fuzz_settings(300)
@given(
    names=st.lists(
        st.tuples(
            st.text(alphabet=name_chars, min_size=1, max_size=24),
            st.sampled_from([".txt", ".xml", ".TXT", ".png", "", ".txt.bak"]),
        ),
        max_size=5,
        unique_by=lambda t: t[0] + t[1],
    ),
    sane=st.lists(st.integers(0, 5), max_size=3, unique=True),
)
def test_random_file_names_are_read_or_refused_by_name(tmp_path_factory, exported_case, names, sane):
    folder = tmp_path_factory.mktemp("annotator")
    write_class_list(folder / "class_list.txt", CLASSES)
    files = {f"c_{k:04d}.txt": "0 0.5 0.5 0.2 0.2\n" for k in sane}
    for stem, suffix in names:
        files[stem + suffix] = "1 0.5 0.5 0.2 0.2\n" if suffix == ".txt" else valid_voc().decode()
    written = []
    for name, content in files.items():
        if name in (".", "..") or name == "class_list.txt":
            continue
        (folder / name).write_text(content)
        written.append(name)
    try:
        table = boxes.annotator_table(
            folder, "a", PRESETS["project"], CLASSES, {"c": exported_case}.get, known_cases={"c"}
        )
    except SamcrowdError as e:
        assert e.path is not None and Path(e.path).parent == folder and Path(e.path).name in written, str(e)
        event("refused")
        return
    event("read")
    read = set(table.file)
    visible = {n for n in written if not n.startswith(".") and Path(n).suffix in (".txt", ".xml")}
    assert read == visible  # every annotation file is in the table: none silently left out
    assert ((table.x0 >= 0) & (table.x1 <= 64) & (table.y0 >= 0) & (table.y1 <= 48)).all()
