"""Text from a picture with RapidOCR (PP-OCR ONNX models shipped inside the `rapidocr` wheel).

The bundled model files are named explicitly, so RapidOCR never looks for (or downloads) others.
Synchronous; runs on the OCR model's own thread (see `MediaService`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rapidocr
from rapidocr import RapidOCR

from breakingwind.config import MediaSettings
from breakingwind.media.images import NormalisedImage

_MODELS = Path(rapidocr.__file__).resolve().parent / "models"
_BUNDLED = {
    "Det.model_path": _MODELS / "PP-OCRv6_det_small.onnx",
    "Cls.model_path": _MODELS / "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec.model_path": _MODELS / "PP-OCRv6_rec_small.onnx",
}


@dataclass(frozen=True)
class OcrLine:
    text: str
    score: float  # mean recognition confidence of the boxes on the line
    top: int  # y of the line's top edge, in pixels


@dataclass(frozen=True)
class ImageText:
    """What a picture says: OCR text line by line, and a vision model's description if any."""

    text: str
    lines: list[OcrLine]
    width: int
    height: int
    format: str
    ocr_s: float
    description: str | None = None


def load_ocr(settings: MediaSettings) -> RapidOCR:
    params: dict[str, object] = {key: str(path) for key, path in _BUNDLED.items()}
    params["Global.log_level"] = "warning"
    if settings.ocr_threads is not None:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = settings.ocr_threads
    return RapidOCR(params=params)


def read_text(engine: RapidOCR, picture: NormalisedImage) -> ImageText:
    """OCR the picture; boxes on the same row are joined left to right into one line."""
    started = time.monotonic()
    bgr = np.ascontiguousarray(np.asarray(picture.image)[:, :, ::-1])
    result = engine(bgr)
    boxes = (
        []
        if result.boxes is None
        else list(zip(result.boxes, result.txts, result.scores, strict=True))
    )
    lines = _rows(boxes)
    return ImageText(
        text="\n".join(line.text for line in lines),
        lines=lines,
        width=picture.width,
        height=picture.height,
        format=picture.format,
        ocr_s=time.monotonic() - started,
    )


def _rows(boxes: list[tuple[np.ndarray, str, float]]) -> list[OcrLine]:
    """Group text boxes into rows: a box whose vertical centre lies inside the current row's
    span joins it (code screenshots split a line at gutters and wide gaps)."""
    rows: list[list[tuple[float, float, float, str, float]]] = []
    for box, text, score in sorted(boxes, key=lambda item: float(item[0][:, 1].min())):
        top, bottom, left = float(box[:, 1].min()), float(box[:, 1].max()), float(box[:, 0].min())
        centre = (top + bottom) / 2
        if rows and rows[-1][0][0] <= centre <= rows[-1][0][1]:
            rows[-1].append((top, bottom, left, text, score))
        else:
            rows.append([(top, bottom, left, text, score)])
    return [
        OcrLine(
            text=" ".join(item[3] for item in sorted(row, key=lambda item: item[2])),
            score=sum(item[4] for item in row) / len(row),
            top=int(row[0][0]),
        )
        for row in rows
    ]
