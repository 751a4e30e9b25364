"""WSOL on real objects: Fashion-MNIST articles on real photographs (``fashion_wsol``).

  apt-get install dataset-fashion-mnist      # the four IDX files, once
  python -m experiments.wsol --config=experiments/configs/fashion_wsol.py \
      --workdir=runs/fashion_wsol

Data: ``fashion_wsol`` (96x96 scenes: one Fashion-MNIST article at a random
position and scale, 29-62 px tall, over a crop of one of scikit-image's
bundled photographs, among superellipse fragments of other articles;
5,000 / 1,000 / 2,000 images, 10 classes; prepared on first use from the IDX
files, no download, no TensorFlow), resized to 48x48 for the network: the
articles come from 28x28 images, so 48 pixels keep most of their detail at
a quarter of the 96x96 cost. Flips on (garments are close to mirror
symmetric; the boxes flip with the image), no crop.

Model and recipe: those of ``default.py`` (``resnet_tiny``, layer4 stride 1,
SGD + Nesterov, cosine), which gives 12x12 maps at 48x48; region size 3 keeps
the region at the same fraction of the map as ``default.py``'s 2 on 8x8.

Everything else (methods, protocols, baselines, thresholds on the validation
split) is ``default.py``'s.
"""

from experiments.configs import default


def get_config():
  c = default.get_config()
  c.data.name = "fashion_wsol"
  c.data.image_size = 48
  c.data.resize_size = 48
  c.data.flip = True
  c.data.random_crop = False
  c.wsol.region_size = 3
  return c
