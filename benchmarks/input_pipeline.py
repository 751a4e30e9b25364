"""Input-pipeline throughput: images/s at 224 with augmentation, per CPU core.

Builds a temporary tfds dataset of generated CUB-like JPEGs (default 500 x 375,
cut from scikit-image's bundled photos when scikit-image is installed, else
from smooth random colour fields; tfds writes the JPEG bytes as they are, so
no TensorFlow is needed), then runs the real training pipeline
(array_record read -> tfds decode -> resize 256 -> random crop 224 -> flip ->
ImageNet normalisation) and reports:

* per-stage cost on one core (read + decode, resize, crop/flip/normalise,
  box transform);
* images/s of `Pipeline.get_batch` on one core (the per-core figure);
* images/s of `Pipeline.iterate` with grain threads and with grain worker
  processes (scaling on this machine);
* the cores needed to feed a ResNet-50 step on one H100 (~2,500 images/s,
  configurable) = target / per-core rate, and the same with uint8 output
  (normalisation on the device).

    python benchmarks/input_pipeline.py --out runs/bench/input_pipeline.json
    python benchmarks/input_pipeline.py --num_images 512 --workers 1 2 4 8
    python benchmarks/input_pipeline.py --height 64 --width 64 --resize 64 --crop 64 \
        --num_images 1024 --batch_size 128 --target 20000     # Tiny-ImageNet-like

Numbers on a shared machine are noisy: compare ratios, rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from infocam_jax import data
from infocam_jax.data import transforms


class InfocamBenchJpegs(tfds.core.GeneratorBasedBuilder):
  """Generated JPEG photos with one box each (benchmark only)."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = []

  def __init__(self, *, num_images: int = 256, height: int = 375, width: int = 500, **kwargs):
    self._num_images, self._hw = num_images, (height, width)
    super().__init__(**kwargs)

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(encoding_format="jpeg"),
        "label": tfds.features.ClassLabel(num_classes=200),
        "bbox": tfds.features.BBoxFeature(),
    }))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(0)
    try:  # real photos compress (and decode) like real data
      import skimage.data  # pylint: disable=g-import-not-at-top
      photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(),
                skimage.data.rocket()]
    except ImportError:  # smooth random colour fields with noise
      photos = [np.clip(np.asarray(Image.fromarray(
          rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC),
                                   np.float32) + rng.normal(0, 8, (480, 640, 3)), 0, 255
                        ).astype(np.uint8) for _ in range(4)]
    h, w = self._hw
    for i in range(self._num_images):
      photo = photos[i % len(photos)]
      # A random window of the photo, resized to h x w and jittered.
      ph, pw = photo.shape[:2]
      ch, cw = int(ph * rng.uniform(0.5, 1.0)), int(pw * rng.uniform(0.5, 1.0))
      top, left = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
      window = Image.fromarray(photo[top:top + ch, left:left + cw]).resize((w, h), Image.BILINEAR)
      buf = io.BytesIO()
      window.save(buf, format="JPEG", quality=90)
      y0, x0 = rng.uniform(0, 0.5, 2)
      yield i, {"image": buf.getvalue(), "label": int(rng.integers(200)),
                "bbox": tfds.features.BBox(y0, x0, y0 + 0.4, x0 + 0.4)}


def _rate(fn, n_images: int, min_seconds: float = 2.0) -> tuple[float, float]:
  """(images per wall second, images per CPU second of this process), single-threaded."""
  fn()  # warm-up (numba compilation, caches)
  count, start, cpu = 0, time.perf_counter(), time.process_time()
  while time.perf_counter() - start < min_seconds:
    fn()
    count += n_images
  return count / (time.perf_counter() - start), count / (time.process_time() - cpu)


def stage_costs(source, resize: int, crop: int, n: int = 64) -> dict[str, float]:
  """Milliseconds per image of each stage, on one core."""
  idx = list(range(min(n, len(source))))
  examples = [source[i] for i in idx]
  t = time.perf_counter()
  for i in idx:
    source[i]
  read = (time.perf_counter() - t) / len(idx)
  resized = []
  t = time.perf_counter()
  for ex in examples:
    resized.append(transforms.resize(ex["image"], resize, resize))
  rs = (time.perf_counter() - t) / len(idx)
  out = np.empty((crop, crop, 3), np.float32)
  oy, ox = (resize - crop) // 3, (resize - crop) // 2  # any offset inside the image
  transforms.crop_flip_normalize(resized[0], oy, ox, crop, True, out=out)  # compile
  t = time.perf_counter()
  for r in resized:
    transforms.crop_flip_normalize(r, oy, ox, crop, True, out=out)
  norm = (time.perf_counter() - t) / len(idx)
  t = time.perf_counter()
  for ex in examples:
    transforms.transform_boxes(ex["bbox"], resize_hw=(resize, resize), offset_yx=(oy, ox),
                               crop_hw=(crop, crop), flip=True)
  boxes = (time.perf_counter() - t) / len(idx)
  return {"read_decode_ms": 1e3 * read, "resize_ms": 1e3 * rs, "crop_flip_normalize_ms": 1e3 * norm,
          "boxes_ms": 1e3 * boxes}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_images", type=int, default=256)
  parser.add_argument("--height", type=int, default=375)
  parser.add_argument("--width", type=int, default=500)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--resize", type=int, default=256)
  parser.add_argument("--crop", type=int, default=224)
  parser.add_argument("--threads", type=int, nargs="*", default=[2])
  parser.add_argument("--workers", type=int, nargs="*", default=[2])
  parser.add_argument("--seconds", type=float, default=3.0, help="minimum time per measurement")
  parser.add_argument("--target", type=float, default=2500.0,
                      help="images/s of the accelerator step to feed (ResNet-50, one H100)")
  parser.add_argument("--data_dir", default=None, help="default: a temporary directory")
  parser.add_argument("--out", default=None, help="write the results as JSON here")
  args = parser.parse_args()

  tmp = None
  data_dir = args.data_dir
  if data_dir is None:
    tmp = tempfile.TemporaryDirectory()
    data_dir = tmp.name
  t = time.time()
  builder = InfocamBenchJpegs(num_images=args.num_images, height=args.height, width=args.width,
                              data_dir=data_dir)
  builder.download_and_prepare(file_format="array_record")
  prep_s = time.time() - t
  # Read through a read-only builder restored from the files, as any prepared
  # dataset is read: the worker processes then need no benchmark class.
  reader = tfds.builder_from_directory(builder.data_path)
  source = data.Source(name="infocam_bench_jpegs", split="train",
                       data_source=reader.as_data_source(split="train"), builder=reader)
  results: dict = {
      "machine": {"platform": platform.platform(), "processor": platform.processor(),
                  "cpu_count": os.cpu_count(), "python": platform.python_version()},
      "date": time.strftime("%Y-%m-%d"),
      "setup": {"images": len(source), "image_hw": [args.height, args.width],
                "jpeg_kb": round(os.path.getsize(next(
                    os.path.join(builder.data_path, f) for f in os.listdir(builder.data_path)
                    if "array_record" in f)) / len(source) / 1024, 1),
                "resize": args.resize, "crop": args.crop, "batch_size": args.batch_size,
                "prepare_s": round(prep_s, 2)},
  }
  results["stages_ms_per_image_one_core"] = {
      k: round(v, 3) for k, v in stage_costs(source, args.resize, args.crop).items()}

  def pipe(**kw):
    return data.make_pipeline(source, batch_size=args.batch_size, train=True,
                              image_size=args.crop, resize_size=args.resize, seed=0, **kw)

  p = pipe(num_threads=0)
  step = iter(range(10**9))
  wall, per_core = _rate(lambda: p.get_batch(next(step)), args.batch_size, args.seconds)
  pu = pipe(num_threads=0, image_dtype="uint8")
  wall_u8, per_core_u8 = _rate(lambda: pu.get_batch(next(step)), args.batch_size, args.seconds)
  results["one_core_images_per_s"] = {
      "float32_per_cpu_second": round(per_core, 1), "uint8_per_cpu_second": round(per_core_u8, 1),
      "float32_per_wall_second": round(wall, 1), "uint8_per_wall_second": round(wall_u8, 1)}

  def iterate_rate(**kw) -> float:
    pl = pipe(**kw)
    it = pl.iterate(start_step=0)
    next(it)  # start-up (worker spawn) excluded
    n_batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
      next(it)
      n_batches += 1
    rate = n_batches * args.batch_size / (time.perf_counter() - start)
    it.close()
    return rate

  results["iterate_images_per_s"] = {}
  for n in args.threads:
    results["iterate_images_per_s"][f"threads={n}"] = round(iterate_rate(num_threads=n), 1)
  for n in args.workers:
    results["iterate_images_per_s"][f"workers={n}"] = round(iterate_rate(num_workers=n), 1)
  results["estimate"] = {
      "target_images_per_s": args.target,
      "cores_needed_float32": round(args.target / per_core, 1),
      "cores_needed_uint8_normalise_on_device": round(args.target / per_core_u8, 1),
      "note": "target / images per CPU-second of one process (get_batch on one core), "
              "assuming linear scaling over worker processes (each worker assembles whole "
              "batches; no shared state)",
  }
  print(json.dumps(results, indent=2))
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)
  if tmp is not None:
    tmp.cleanup()


if __name__ == "__main__":
  main()
