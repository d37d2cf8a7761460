"""OpenLabeling files: YOLO darknet `.txt`, PASCAL VOC `.xml` and `class_list.txt`, read and written.

An annotator's folder is what OpenLabeling writes (`YOLO_darknet/<stem>.txt`,
`PASCAL_VOC/<stem>.xml`, `class_list.txt`) or a flat folder of such files (as the published
campaign). Corners follow OpenLabeling: the pixels a box was drawn from, inclusive; here
they become half-open pixel ranges (x0 <= column < x1), the convention of samcrowd.geometry.

Every problem is a SamcrowdError naming file and line. XML is parsed with defusedxml, which
refuses DTDs, entity declarations and external references.
"""

from __future__ import annotations

import math
import re
import xml.sax
from collections.abc import Callable
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from xml.etree import ElementTree

import defusedxml.sax
from defusedxml import DefusedXmlException

from samcrowd.errors import SamcrowdError
from samcrowd.identifiers import IDENTIFIER

#: BTCV's 13 classes in label order (class id = BTCV label value - 1).
BTCV_CLASSES = (
    "spleen",
    "right kidney",
    "left kidney",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior vena cava",
    "portal vein and splenic vein",
    "pancreas",
    "right adrenal gland",
    "left adrenal gland",
)

#: The class an annotator boxes on a slice that shows none of the organs: "seen, nothing there".
#: OpenLabeling writes an empty file for every image when it starts, so in a folder whose class
#: list holds this class (a samcrowd package) an empty file means "not done yet".
MARKER = "nothing_here"

#: A package's own files, sent back with the annotator's work: never annotation files.
PACKAGE_FILES = frozenset({"slices.txt", "instructions.html"})

_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INT = re.compile(r"^\d+$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def text_lines(text: str) -> list[str]:
    """Lines as editors number them: broken at LF, CRLF or a lone CR (universal newlines), and
    nowhere else (form feeds or U+2028 inside a line are whitespace, not new lines)."""
    return _LINE_BREAK.split(text)


@dataclass(frozen=True)
class Naming:
    """How a campaign names its files and orients its PNGs.

    `axes` is None when the PNGs are samcrowd's own export (the manifest has the geometry);
    otherwise it fixes which voxel axes the PNG rows and columns show, whatever the affine.
    `rounding` turns denormalised YOLO corners into pixels: 'round' (nearest) or 'truncate'
    (Python int(), as the published study did).
    """

    name: str
    pattern: str
    rounding: str = "round"
    axes: dict | None = None
    classes: tuple[str, ...] | None = None
    png_shape: tuple[int, int] | None = None  # rows, columns, when no manifest says

    def parse_stem(self, stem: str) -> tuple[str, int] | None:
        m = re.fullmatch(self.pattern, stem)
        return (m["case"], int(m["slice"])) if m else None


PRESETS = {
    "project": Naming("project", rf"(?P<case>{IDENTIFIER})_(?P<slice>\d+)"),
    # med2image exports of BTCV: img0001-slice100.png = numpy.rot90(volume[:, :, 100])
    "med2image": Naming(
        "med2image",
        r"(?P<case>img\d{4})-slice(?P<slice>\d{3})",
        rounding="truncate",
        axes={"slice_axis": 2, "row_axis": 1, "row_flip": True, "col_axis": 0, "col_flip": False},
        classes=BTCV_CLASSES,
        png_shape=(512, 512),
    ),
}


@dataclass(frozen=True)
class Box:
    """One drawn box: class name, half-open pixel corners, where it came from."""

    cls: str
    x0: int
    y0: int
    x1: int
    y1: int
    line: int


@dataclass
class SliceFile:
    """What an annotator drew on one PNG (an empty list: seen, nothing drawn)."""

    stem: str
    path: Path
    fmt: str  # 'yolo' or 'voc'
    boxes: list[Box] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def normalise_class(name: str) -> str:
    """'Right Kidney' -> 'right_kidney': how class names are matched to organ names."""
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def read_text(path: Path) -> str:
    """Read an annotation text file: UTF-8, no byte-order mark, no NUL bytes."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raise SamcrowdError("starts with a UTF-8 byte-order mark (save the file without BOM)", path, 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = len(text_lines(raw[: e.start].decode("utf-8", errors="replace")))
        raise SamcrowdError(f"not UTF-8 text (byte {e.start})", path, line) from None
    if "\x00" in text:
        raise SamcrowdError("contains NUL bytes", path, len(text_lines(text[: text.index("\x00")])))
    return text


def read_class_list(path: Path) -> list[str]:
    """Class names in id order, as OpenLabeling reads them: one per line, blank lines skipped."""
    names = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text_lines(read_text(path)), 1):
        if not line.strip():
            continue
        name = line.strip()
        if name in seen:
            raise SamcrowdError(f"class '{name}' listed twice (first on line {seen[name]})", path, number)
        seen[name] = number
        names.append(name)
    if not names:
        raise SamcrowdError("no classes listed", path)
    return names


def _to_pixels(lo: float, hi: float, rounding: str) -> tuple[int, int]:
    """Inclusive float corners -> inclusive integer pixel corners."""
    if rounding == "truncate":
        return int(lo), int(hi)
    return math.floor(lo + 0.5), math.floor(hi + 0.5)


def _clip(
    path: Path, line: int, cls: str, x0: int, y0: int, x1: int, y1: int, width: int, height: int, warnings: list[str]
) -> Box:
    """Half-open box clipped to the image; a box that lies wholly outside is an error."""
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx0 >= cx1 or cy0 >= cy1:
        raise SamcrowdError(f"box ({x0}, {y0}, {x1}, {y1}) lies outside the {width}x{height} image", path, line)
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        warnings.append(f"{path}:{line}: box ({x0}, {y0}, {x1}, {y1}) clipped to the {width}x{height} image")
    return Box(cls, cx0, cy0, cx1, cy1, line)


def parse_yolo(
    path: Path, classes: list[str] | tuple[str, ...], width: int, height: int, rounding: str = "round"
) -> SliceFile:
    """Parse `class x_center y_center width height` lines (normalised floats; LF, CRLF or CR)."""
    result = SliceFile(path.stem, path, "yolo")
    for number, line in enumerate(text_lines(read_text(path)), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise SamcrowdError(
                f"expected 5 fields 'class x_center y_center width height', got {len(fields)}", path, number
            )
        if not _INT.match(fields[0]):
            raise SamcrowdError(f"class id '{fields[0]}' is not a non-negative integer", path, number)
        cid = int(fields[0])
        if cid >= len(classes):
            raise SamcrowdError(f"class id {cid} is beyond the {len(classes)} classes of the class list", path, number)
        values = []
        for name, text in zip(("x_center", "y_center", "width", "height"), fields[1:]):
            if not _FLOAT.match(text):
                kind = "not finite" if text.lower().lstrip("+-") in ("nan", "inf", "infinity") else "not a number"
                raise SamcrowdError(f"{name} '{text}' is {kind}", path, number)
            values.append(float(text))
        xc, yc, w, h = values
        if not all(math.isfinite(v) for v in values):
            raise SamcrowdError("a value overflows to infinity", path, number)
        if w <= 0 or h <= 0:
            raise SamcrowdError(f"degenerate box: width {fields[3]}, height {fields[4]} (must be > 0)", path, number)
        if not (-1 <= xc <= 2 and -1 <= yc <= 2 and w <= 2 and h <= 2):
            raise SamcrowdError("values far outside the normalised range 0..1", path, number)
        xmin, xmax = _to_pixels((xc - w / 2) * width, (xc + w / 2) * width, rounding)
        ymin, ymax = _to_pixels((yc - h / 2) * height, (yc + h / 2) * height, rounding)
        if xmax <= xmin or ymax <= ymin:
            raise SamcrowdError(f"degenerate box: less than one pixel wide on the {width}x{height} image", path, number)
        result.boxes.append(
            _clip(path, number, classes[cid], xmin, ymin, xmax + 1, ymax + 1, width, height, result.warnings)
        )
    return result


class _VocHandler(xml.sax.handler.ContentHandler):
    """Collects the elements of a VOC file with the line each starts on."""

    def __init__(self):
        super().__init__()
        self.locator = None
        self.stack: list[str] = []
        self.text: list[str] = []
        self.values: list[tuple[str, str, int]] = []  # (element path, text, line)

    def setDocumentLocator(self, locator):
        self.locator = locator

    def startElement(self, name, attrs):
        self.stack.append(name)
        self.text = []
        if "/".join(self.stack) == "annotation/object":
            self.values.append(("annotation/object", "", self.locator.getLineNumber() if self.locator else 0))

    def characters(self, content):
        self.text.append(content)

    def endElement(self, name):
        line = self.locator.getLineNumber() if self.locator else 0
        path = "/".join(self.stack)
        if path != "annotation/object":  # objects are marked where they start
            self.values.append((path, "".join(self.text).strip(), line))
        self.stack.pop()
        self.text = []


def parse_voc(path: Path, rounding: str = "round") -> tuple[SliceFile, tuple[int, int]]:
    """Parse a PASCAL VOC file; return its boxes and the (width, height) it declares."""
    handler = _VocHandler()
    parser = defusedxml.sax.make_parser()
    parser.forbid_dtd = parser.forbid_entities = parser.forbid_external = True
    parser.setContentHandler(handler)
    text = read_text(path)
    try:
        parser.parse(_StringSource(text))
    except DefusedXmlException as e:
        line = handler.locator.getLineNumber() if handler.locator else None
        raise SamcrowdError(
            f"refused: {type(e).__name__} (DTDs, entities and external references are not allowed in annotation files)",
            path,
            line,
        ) from None
    except xml.sax.SAXParseException as e:
        raise SamcrowdError(f"malformed XML: {e.getMessage()}", path, e.getLineNumber()) from None
    if not handler.values or handler.values[-1][0] != "annotation":
        root = handler.values[-1][0] if handler.values else "nothing"
        raise SamcrowdError(f"root element is '{root}', expected 'annotation'", path, 1)

    def number(value: str, what: str, line: int, integer: bool) -> float:
        if not _FLOAT.match(value):
            raise SamcrowdError(f"{what} '{value}' is not a number", path, line)
        v = float(value)
        if not math.isfinite(v):
            raise SamcrowdError(f"{what} '{value}' is not finite", path, line)
        if integer and (v != int(v) or v <= 0):
            raise SamcrowdError(f"{what} '{value}' is not a positive integer", path, line)
        return v

    size: dict[str, float] = {}
    objects: list[dict[str, tuple[str, int]]] = []
    for key, value, line in handler.values:
        leaf = key.rsplit("/", 1)[-1]
        if key == "annotation/object":
            objects.append({"_line": ("", line)})
        elif key in ("annotation/size/width", "annotation/size/height"):
            if leaf in size:  # which one would OpenLabeling have meant? refuse rather than guess
                raise SamcrowdError(f"<size> has a second <{leaf}>", path, line)
            size[leaf] = number(value, leaf, line, integer=True)
        elif key.startswith("annotation/object/") and objects:
            if key in ("annotation/object/name",) or key.startswith("annotation/object/bndbox/"):
                if leaf in objects[-1]:
                    raise SamcrowdError(f"<object> has a second <{leaf}>", path, line)
                objects[-1][leaf] = (value, line)
    if "width" not in size or "height" not in size:
        raise SamcrowdError("no <size><width>/<height>", path)
    width, height = int(size["width"]), int(size["height"])
    result = SliceFile(path.stem, path, "voc")
    for obj in objects:
        start = obj["_line"][1]
        missing = [k for k in ("name", "xmin", "ymin", "xmax", "ymax") if k not in obj]
        if missing:
            raise SamcrowdError(f"<object> without <{missing[0]}>", path, start)
        corners = []
        for k in ("xmin", "ymin", "xmax", "ymax"):
            value, line = obj[k]
            corners.append(number(value, k, line, integer=False))
        xmin, xmax = _to_pixels(corners[0], corners[2], rounding)
        ymin, ymax = _to_pixels(corners[1], corners[3], rounding)
        if xmax <= xmin or ymax <= ymin:
            raise SamcrowdError(f"degenerate box: xmin {xmin}, xmax {xmax}, ymin {ymin}, ymax {ymax}", path, start)
        name = obj["name"][0]
        if not name:
            raise SamcrowdError("<object> with an empty <name>", path, obj["name"][1])
        result.boxes.append(_clip(path, start, name, xmin, ymin, xmax + 1, ymax + 1, width, height, result.warnings))
    return result, (width, height)


class _StringSource(xml.sax.xmlreader.InputSource):
    def __init__(self, text: str):
        super().__init__()
        self.setCharacterStream(StringIO(text))


@dataclass
class AnnotatorFolder:
    """The files of one annotator's folder, by stem."""

    path: Path
    yolo: dict[str, Path]
    voc: dict[str, Path]
    class_list: Path | None
    ignored: list[Path]


def layout(folder: Path) -> tuple[Path, Path] | None:
    """The (YOLO_darknet, PASCAL_VOC) folders of an annotator's folder in OpenLabeling's layout,
    also under output/ as in a package sent back whole; None for a flat folder of files."""
    for base in (folder / "output", folder):
        yolo, voc = base / "YOLO_darknet", base / "PASCAL_VOC"
        if yolo.is_dir() or voc.is_dir():
            return yolo, voc
    return None


def scan_folder(folder: str | Path) -> AnnotatorFolder:
    """Find an annotator's files: OpenLabeling's layout (also under output/, as in a returned
    package) or a flat folder of .txt/.xml files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SamcrowdError("annotation folder not found", folder)
    found = AnnotatorFolder(folder, {}, {}, None, [])
    class_list = folder / "class_list.txt"
    found.class_list = class_list if class_list.is_file() else None
    dirs = layout(folder)
    flat = dirs is None
    yolo, voc = (folder, folder) if flat else dirs
    places = [(yolo, ".txt", found.yolo), (voc, ".xml", found.voc)]
    for place, suffix, target in places:
        if not place.is_dir():
            continue
        for path in sorted(place.iterdir()):
            if path.name.startswith(".") or path == found.class_list or path.is_dir() or path.name in PACKAGE_FILES:
                found.ignored.append(path)
                continue
            if path.suffix.lower() == suffix and path.suffix != suffix:
                raise SamcrowdError(f"extension '{path.suffix}' must be lower case '{suffix}'", path)
            if path.suffix != suffix:
                if flat and path.suffix in (".txt", ".xml"):
                    continue
                raise SamcrowdError(f"unexpected file in an annotation folder (expected *{suffix})", path)
            target[path.stem] = path
    return found


def has_returns(folder: str | Path) -> bool:
    """Whether an annotator's folder holds any annotation file yet (a package sent back before
    OpenLabeling ran, or an empty folder, has none: its annotator is still out)."""
    folder = Path(folder)
    for place in layout(folder) or (folder,):
        if place.is_dir() and any(
            p.suffix in (".txt", ".xml") and p.name not in PACKAGE_FILES | {"class_list.txt"} and p.is_file()
            for p in place.iterdir()
        ):
            return True
    return False


def returned_files(folder: str | Path, naming: Naming) -> dict[str, str]:
    """A fingerprint of what an annotator has returned so far, per case: {case: digest of the
    names, sizes and modification times of its files}; key "" holds the class list and files
    whose names name no case. Never raises on a bad file (its masks job says what is wrong);
    the workflow reruns exactly the masks jobs whose cases' fingerprints changed."""
    import hashlib
    import os

    folder = Path(folder)
    entries: dict[str, list[str]] = {}
    dirs = layout(folder)
    flat = dirs is None
    for place in [folder] if flat else [folder, *dirs]:
        try:
            listing = list(os.scandir(place))
        except OSError:
            continue
        for entry in listing:
            if not entry.is_file() or entry.name in PACKAGE_FILES:
                continue
            if place == folder and not flat and entry.name != "class_list.txt":
                continue
            parsed = naming.parse_stem(entry.name.rsplit(".", 1)[0])
            key = parsed[0] if parsed and entry.name != "class_list.txt" else ""
            st = entry.stat()
            entries.setdefault(key, []).append(f"{place.name}/{entry.name} {st.st_size} {st.st_mtime_ns}")
    return {key: hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16] for key, lines in entries.items()}


def write_class_list(path: Path, names: list[str] | tuple[str, ...]) -> None:
    """Write class_list.txt (one name per line)."""
    path.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")


def write_yolo(path: Path, boxes: list[Box], classes: list[str] | tuple[str, ...], width: int, height: int) -> None:
    """Write boxes (half-open pixel ranges) as OpenLabeling's YOLO lines (inclusive corners)."""
    lines = []
    for b in boxes:
        xmin, xmax, ymin, ymax = b.x0, b.x1 - 1, b.y0, b.y1 - 1
        lines.append(
            f"{classes.index(b.cls)} {(xmin + xmax) / 2 / width:.6f} {(ymin + ymax) / 2 / height:.6f} "
            f"{(xmax - xmin) / width:.6f} {(ymax - ymin) / height:.6f}\n"
        )
    path.write_text("".join(lines), encoding="utf-8")


def write_voc(path: Path, stem: str, boxes: list[Box], width: int, height: int) -> None:
    """Write boxes as OpenLabeling's PASCAL VOC XML (integer inclusive corners)."""
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "folder").text = "images"
    ElementTree.SubElement(root, "filename").text = f"{stem}.png"
    size = ElementTree.SubElement(root, "size")
    for k, v in (("width", width), ("height", height), ("depth", 3)):
        ElementTree.SubElement(size, k).text = str(v)
    ElementTree.SubElement(root, "segmented").text = "0"
    for b in boxes:
        obj = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(obj, "name").text = b.cls
        for k, v in (("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            ElementTree.SubElement(obj, k).text = v
        box = ElementTree.SubElement(obj, "bndbox")
        for k, v in (("xmin", b.x0), ("ymin", b.y0), ("xmax", b.x1 - 1), ("ymax", b.y1 - 1)):
            ElementTree.SubElement(box, k).text = str(v)
    ElementTree.indent(root)
    path.write_text(ElementTree.tostring(root, encoding="unicode") + "\n", encoding="utf-8")


def boxes_agree(a: list[Box], b: list[Box], tolerance: int = 1) -> bool:
    """True when two box lists hold the same classes with corners within `tolerance` pixels."""
    if len(a) != len(b):
        return False
    rest = list(b)
    for box in a:
        match = next(
            (
                o
                for o in rest
                if o.cls == box.cls
                and max(abs(box.x0 - o.x0), abs(box.y0 - o.y0), abs(box.x1 - o.x1), abs(box.y1 - o.y1)) <= tolerance
            ),
            None,
        )
        if match is None:
            return False
        rest.remove(match)
    return True


def read_slice(
    stem: str,
    folder: AnnotatorFolder,
    classes: list[str] | tuple[str, ...],
    size: Callable[[], tuple[int, int]],
    rounding: str,
) -> SliceFile:
    """Read one stem: VOC when present (it states the image size), checked against YOLO when both exist.

    `size()` gives (width, height) of the PNG, needed to read YOLO's normalised values.
    """
    voc = yolo = None
    if stem in folder.voc:
        voc, (w, h) = parse_voc(folder.voc[stem], rounding)
        expected = size()
        if (w, h) != tuple(expected):
            raise SamcrowdError(
                f"image size {w}x{h} differs from the exported PNG's {expected[0]}x{expected[1]}", folder.voc[stem]
            )
        unknown = [b for b in voc.boxes if b.cls not in classes]
        if unknown and folder.class_list is not None:
            raise SamcrowdError(
                f"class '{unknown[0].cls}' is not in {folder.class_list}", folder.voc[stem], unknown[0].line
            )
    if stem in folder.yolo:
        width, height = size()
        yolo = parse_yolo(folder.yolo[stem], classes, width, height, rounding)
    if voc is not None and yolo is not None and not boxes_agree(voc.boxes, yolo.boxes):
        raise SamcrowdError(
            f"YOLO and VOC files of stem '{stem}' disagree by more than 1 pixel "
            f"(YOLO {[(b.cls, b.x0, b.y0, b.x1, b.y1) for b in yolo.boxes]}, "
            f"VOC {[(b.cls, b.x0, b.y0, b.x1, b.y1) for b in voc.boxes]})",
            folder.voc[stem],
        )
    chosen = voc if voc is not None else yolo
    assert chosen is not None
    return chosen
