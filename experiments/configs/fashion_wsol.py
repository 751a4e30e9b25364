"""WSOL on real objects: Fashion-MNIST articles on real photographs (``fashion_wsol``).

  apt-get install dataset-fashion-mnist      # the four IDX files, once
  python -m experiments.wsol --config=experiments/configs/fashion_wsol.py \
      --workdir=runs/fashion_wsol

Data: ``fashion_wsol`` (96x96 scenes: one Fashion-MNIST article at a random
position and scale, 29-62 px tall, over a crop of one of scikit-image's
bundled photographs, among superellipse fragments of other articles;
5,000 / 1,000 / 2,000 images, 10 classes; prepared on first use from the IDX
files, no download, no TensorFlow), resized to 32x32 for the network (as
``default.py``): the articles are then 10-21 px tall, and 3 seeds fit in
~15 minutes on 2 CPU cores (48 px keeps more of their 28x28 detail at 2.25x
the cost: ``--config.data.image_size=48 --config.data.resize_size=48
--config.wsol.region_size=3``). Flips on (garments are close to mirror
symmetric; the boxes flip with the image), no crop.

Model and recipe: those of ``default.py`` (``resnet_tiny``, layer4 stride 1,
SGD + Nesterov, cosine), which gives 8x8 maps at 32x32, and its region size 2.

Everything else (methods, protocols, baselines, thresholds on the validation
split) is ``default.py``'s.
"""

from experiments.configs import default

#: The experiment this config file is for (``python -m experiments.<EXPERIMENT>``).
EXPERIMENT = "wsol"


def get_config():
  c = default.get_config()
  c.data.name = "fashion_wsol"
  c.data.flip = True
  return c
