"""OpenLabeling files: what parses, how corners are read, and every bad input as one clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from samcrowd.errors import SamcrowdError
from samcrowd.openlabeling import (
    Box,
    boxes_agree,
    parse_voc,
    parse_yolo,
    read_class_list,
    read_slice,
    scan_folder,
    write_voc,
    write_yolo,
)

CLASSES = ["spleen", "right_kidney", "left_kidney", "liver", "aorta"]


def yolo(tmp_path, text, name="c_0001.txt", raw=None):
    path = tmp_path / name
    path.write_bytes(raw if raw is not None else text.encode())
    return path


def test_yolo_lines_become_half_open_pixel_boxes(tmp_path):
    # OpenLabeling corners are the pixels drawn from (inclusive): xmin 10, xmax 29 -> columns 10..29
    path = yolo(tmp_path, "3 0.1953125 0.3 0.1484375 0.2\n")
    parsed = parse_yolo(path, CLASSES, 100, 50)
    assert [(b.cls, b.x0, b.y0, b.x1, b.y1, b.line) for b in parsed.boxes] == [("liver", 12, 10, 28, 21, 1)]


@pytest.mark.parametrize(
    "text", ["0 0.5 0.5 0.2 0.2\r\n1 5e-1 .5 2E-1 0.2\r\n", "0 +0.50000 0.5 0.2 0.2\n\n1 0.5 0.5 0.2 0.2"]
)
def test_any_float_format_python_writes_crlf_and_blank_lines(tmp_path, text):
    parsed = parse_yolo(yolo(tmp_path, text), CLASSES, 100, 100)
    assert [(b.cls, b.x0, b.x1) for b in parsed.boxes] == [("spleen", 40, 61), ("right_kidney", 40, 61)]


def test_an_empty_file_is_a_slice_seen_with_no_box(tmp_path):
    assert parse_yolo(yolo(tmp_path, ""), CLASSES, 10, 10).boxes == []
    assert parse_yolo(yolo(tmp_path, "\r\n  \n"), CLASSES, 10, 10).boxes == []


def test_truncation_reads_corners_as_the_published_study_did(tmp_path):
    # img0001-slice100, line 1: y corners 113.8 .. 323.8 -> int() -> 113 .. 323
    path = yolo(tmp_path, "0 0.359375 0.42734375 0.51171875 0.41015625\n")
    b = parse_yolo(path, CLASSES, 512, 512, rounding="truncate").boxes[0]
    assert (b.x0, b.y0, b.x1, b.y1) == (53, 113, 316, 324)
    b = parse_yolo(path, CLASSES, 512, 512, rounding="round").boxes[0]
    assert (b.y0, b.y1) == (114, 325)


def test_boxes_poking_out_of_the_image_are_clipped_with_a_warning(tmp_path):
    parsed = parse_yolo(yolo(tmp_path, "0 0.05 0.5 0.2 0.2\n"), CLASSES, 100, 100)
    assert (parsed.boxes[0].x0, parsed.boxes[0].x1) == (0, 16)
    assert parsed.warnings == [f"{tmp_path / 'c_0001.txt'}:1: box (-5, 40, 16, 61) clipped to the 100x100 image"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("0 0.5 0.5 0.2\n", ":1: expected 5 fields 'class x_center y_center width height', got 4"),
        ("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2 0.1\n", ":2: expected 5 fields"),
        ("0 0.5 half 0.2 0.2\n", ":1: y_center 'half' is not a number"),
        ("0 0.5 0.5 nan 0.2\n", ":1: width 'nan' is not finite"),
        ("0 0.5 0.5 0.2 -inf\n", ":1: height '-inf' is not finite"),
        ("0 0.5 0.5 1e999 0.2\n", ":1: a value overflows to infinity"),
        ("0 0.5 0.5 -0.2 0.2\n", ":1: degenerate box: width -0.2, height 0.2 (must be > 0)"),
        ("0 0.5 0.5 0 0.2\n", ":1: degenerate box: width 0, height 0.2"),
        ("0 0.5 0.5 0.001 0.2\n", ":1: degenerate box: less than one pixel wide"),
        ("5 0.5 0.5 0.2 0.2\n", ":1: class id 5 is beyond the 5 classes of the class list"),
        ("1.0 0.5 0.5 0.2 0.2\n", ":1: class id '1.0' is not a non-negative integer"),
        ("-1 0.5 0.5 0.2 0.2\n", ":1: class id '-1' is not a non-negative integer"),
        ("0 0.5 0.5 1_0 0.2\n", ":1: width '1_0' is not a number"),
        ("0 7 0.5 0.2 0.2\n", ":1: values far outside the normalised range"),
        ("0 3.0 0.5 0.2 0.2\n", ":1: values far outside the normalised range"),
        ("0 1.5 0.5 0.2 0.2\n", ":1: box (140, 40, 161, 61) lies outside the 100x100 image"),
    ],
)
def test_bad_yolo_lines_name_file_and_line(tmp_path, text, message):
    path = yolo(tmp_path, text)
    with pytest.raises(SamcrowdError) as e:
        parse_yolo(path, CLASSES, 100, 100)
    assert str(e.value).startswith(str(path) + ":")
    assert message in str(e.value)


def test_bom_nul_and_non_utf8_are_refused(tmp_path):
    with pytest.raises(SamcrowdError, match=r"c_0001\.txt:1: starts with a UTF-8 byte-order mark"):
        parse_yolo(yolo(tmp_path, "", raw=b"\xef\xbb\xbf0 0.5 0.5 0.2 0.2\n"), CLASSES, 100, 100)
    with pytest.raises(SamcrowdError, match=r"c_0001\.txt:2: contains NUL bytes"):
        parse_yolo(yolo(tmp_path, "", raw=b"0 0.5 0.5 0.2 0.2\n0\x00"), CLASSES, 100, 100)
    with pytest.raises(SamcrowdError, match=r"c_0001\.txt:1: not UTF-8 text"):
        parse_yolo(yolo(tmp_path, "", raw=b"0 0.5\xff 0.5 0.2 0.2\n"), CLASSES, 100, 100)


def test_class_list_ids_are_line_numbers_without_blank_lines(tmp_path):
    path = tmp_path / "class_list.txt"
    path.write_text("spleen\n\nright kidney\r\n  \nliver\n")
    assert read_class_list(path) == ["spleen", "right kidney", "liver"]
    path.write_text("spleen\nliver\nspleen\n")
    with pytest.raises(SamcrowdError, match=r"class_list\.txt:3: class 'spleen' listed twice \(first on line 1\)"):
        read_class_list(path)


VOC = """<annotation>
  <folder>images</folder>
  <filename>c_0001.png</filename>
  <size><width>100</width><height>80</height><depth>3</depth></size>
  <object>
    <name>liver</name>
    <bndbox><xmin>{xmin}</xmin><ymin>10</ymin><xmax>29</xmax><ymax>20</ymax></bndbox>
  </object>
</annotation>
"""


def test_voc_gives_integer_corners_and_the_image_size(tmp_path):
    path = tmp_path / "c_0001.xml"
    path.write_text(VOC.format(xmin=10))
    parsed, size = parse_voc(path)
    assert size == (100, 80)
    assert [(b.cls, b.x0, b.y0, b.x1, b.y1, b.line) for b in parsed.boxes] == [("liver", 10, 10, 30, 21, 5)]


@pytest.mark.parametrize(
    "text, message",
    [
        (VOC.format(xmin="ten"), ":7: xmin 'ten' is not a number"),
        (VOC.format(xmin="NaN"), ":7: xmin 'NaN' is not a number"),
        (VOC.format(xmin=29), ":5: degenerate box: xmin 29, xmax 29"),
        (VOC.format(xmin=10).replace("<name>liver</name>", ""), ":5: <object> without <name>"),
        (
            VOC.format(xmin=10).replace("<width>100</width>", "<width>-3</width>"),
            ":4: width '-3' is not a positive integer",
        ),
        (VOC.format(xmin=10).replace("</object>", ""), "malformed XML"),
        ("<annotations></annotations>", ":1: root element is 'annotations', expected 'annotation'"),
        (
            '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n <!ENTITY lol2 "&lol;&lol;&lol;&lol;">\n]>\n'
            "<annotation>&lol2;</annotation>\n",
            "refused: DTDForbidden",
        ),
        (
            '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<annotation>&xxe;</annotation>',
            "refused: DTDForbidden",
        ),
        (
            '<?xml version="1.0"?>\n<!DOCTYPE annotation SYSTEM "http://example.invalid/voc.dtd">\n<annotation/>',
            "refused: DTDForbidden",
        ),
    ],
)
def test_bad_voc_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "c_0001.xml"
    path.write_text(text)
    with pytest.raises(SamcrowdError) as e:
        parse_voc(path)
    assert str(e.value).startswith(str(path) + ":")
    assert message in str(e.value)


def test_yolo_and_voc_of_a_stem_must_agree_within_a_pixel(tmp_path):
    (tmp_path / "YOLO_darknet").mkdir()
    (tmp_path / "PASCAL_VOC").mkdir()
    boxes = [Box("liver", 10, 10, 30, 21, 0), Box("aorta", 50, 40, 58, 47, 0)]
    write_voc(tmp_path / "PASCAL_VOC/c_0001.xml", "c_0001", boxes, 100, 80)
    write_yolo(tmp_path / "YOLO_darknet/c_0001.txt", [Box("liver", 11, 10, 30, 22, 0), boxes[1]], CLASSES, 100, 80)
    folder = scan_folder(tmp_path)
    chosen = read_slice("c_0001", folder, CLASSES, lambda: (100, 80), "round")
    assert chosen.fmt == "voc" and boxes_agree(chosen.boxes, boxes, tolerance=0)
    write_yolo(tmp_path / "YOLO_darknet/c_0001.txt", [Box("liver", 13, 10, 30, 21, 0), boxes[1]], CLASSES, 100, 80)
    with pytest.raises(SamcrowdError, match=r"c_0001\.xml: YOLO and VOC files of stem 'c_0001' disagree"):
        read_slice("c_0001", scan_folder(tmp_path), CLASSES, lambda: (100, 80), "round")
    with pytest.raises(SamcrowdError, match=r"c_0001\.xml: image size 100x80 differs from the exported PNG's 100x100"):
        read_slice("c_0001", scan_folder(tmp_path), CLASSES, lambda: (100, 100), "round")


def test_folders_refuse_unexpected_files(tmp_path):
    (tmp_path / "YOLO_darknet").mkdir()
    (tmp_path / "YOLO_darknet/c_0001.TXT").write_text("")
    with pytest.raises(SamcrowdError, match=r"c_0001\.TXT: extension '\.TXT' must be lower case"):
        scan_folder(tmp_path)
    (tmp_path / "YOLO_darknet/c_0001.TXT").unlink()
    (tmp_path / "YOLO_darknet/notes.doc").write_text("")
    with pytest.raises(SamcrowdError, match=r"notes\.doc: unexpected file"):
        scan_folder(tmp_path)
    with pytest.raises(SamcrowdError, match="annotation folder not found"):
        scan_folder(tmp_path / "missing")


def test_cli_reports_bad_input_in_one_line_and_prints_nothing_on_stdout(tmp_path):
    folder = tmp_path / "crowd"
    folder.mkdir()
    (folder / "img0001-slice010.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (folder / "img0001-slice011.txt").write_text("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 zero 0.1\n")
    run = subprocess.run(
        [sys.executable, "-m", "samcrowd.cli", "boxes", str(folder), "--preset", "med2image"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        f"samcrowd: error: {folder / 'img0001-slice011.txt'}:2: width 'zero' is not a number"
    ]
