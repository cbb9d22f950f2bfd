"""Golden input tensors for the `keras-compat` preprocessing profile.

Reproduces, with a pinned Pillow, exactly what the classic demo did before VGG16:

    img = keras.preprocessing.image.load_img(path, target_size=(224, 224))  # interpolation='nearest'
    x = keras.preprocessing.image.img_to_array(img)                         # float32 HWC, 0..255
    x = keras.applications.vgg16.preprocess_input(x[None])                  # caffe: RGB->BGR, minus means

load_img (keras_preprocessing / tf.keras.utils): PIL.Image.open, convert('RGB') when the mode is not RGB
(alpha is dropped, EXIF orientation is ignored), then resize((w, h), Image.NEAREST) when the size differs.
preprocess_input caffe (keras imagenet_utils._preprocess_numpy_input): x[..., ::-1], then subtract
[103.939, 116.779, 123.68] from the B, G, R channels, no scaling.

Writes, per photo, test/golden/<stem>.rgb.gz (the 224x224 RGB uint8 pixels after load_img, HWC) and
test/golden/keras-compat.json (hashes, shapes and a deterministic sample of preprocess_input values in
NCHW order, the layout the ONNX model takes).

Usage: python scripts/golden/make-golden.py <fixtures dir> <output dir>
"""

import gzip
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

PHOTOS = [
    "hot-air-balloons-exif-orientation-6.jpg",
    "pink-anemone-flower-alpha.png",
    "chimpanzee.jpg",
    "girl-in-flower-hat.jpg",
]
SIZE = 224
CAFFE_MEAN_BGR = [103.939, 116.779, 123.68]
SAMPLES = 96


def load_img(path: Path) -> Image.Image:
    with open(path, "rb") as f:
        img = Image.open(f)
        img.load()
    if img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (SIZE, SIZE):
        img = img.resize((SIZE, SIZE), Image.NEAREST)
    return img


def preprocess_input_caffe(x: np.ndarray) -> np.ndarray:
    x = x[..., ::-1].copy()
    for c, mean in enumerate(CAFFE_MEAN_BGR):
        x[..., c] -= mean
    return x


def main() -> None:
    fixtures, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(224)
    images = []
    for name in PHOTOS:
        src = fixtures / name
        data = src.read_bytes()
        with Image.open(src) as original:
            source_size = list(original.size)
            source_mode = original.mode
        img = load_img(src)
        pixels = np.asarray(img, dtype=np.uint8)  # HWC RGB
        tensor = preprocess_input_caffe(pixels.astype(np.float32))  # HWC BGR, mean-subtracted
        nchw = np.transpose(tensor, (2, 0, 1))
        stem = Path(name).stem
        (out / f"{stem}.rgb.gz").write_bytes(gzip.compress(pixels.tobytes(), 9, mtime=0))
        idx = rng.integers(0, [3, SIZE, SIZE], size=(SAMPLES, 3))
        samples = [[int(c), int(y), int(x), float(nchw[c, y, x])] for c, y, x in idx]
        images.append(
            {
                "file": name,
                "fileSha256": hashlib.sha256(data).hexdigest(),
                "sourceSize": source_size,
                "sourceMode": source_mode,
                "pixels": f"{stem}.rgb.gz",
                "pixelsSha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
                "tensorSum": float(nchw.astype(np.float64).sum()),
                "samples": samples,
            }
        )
    meta = {
        "generator": "scripts/golden/make-golden.py",
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "size": SIZE,
        "pixelsLayout": "HWC RGB uint8 after load_img",
        "samplesLayout": "[channel, y, x, value] of preprocess_input caffe output in NCHW (BGR channels)",
        "images": images,
    }
    (out / "keras-compat.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
