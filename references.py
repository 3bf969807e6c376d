"""The reference networks, as the well-known single-file examples build them, for comparing against this project's own
DCGAN (gan.py): PyTorch-GAN's MLP (`--arch mlp`, and `mlp-bn` with BatchNorm and no biases) and the TensorFlow DCGAN
tutorial's networks (`--arch dcgan-tf`). Each draws and reads 28x28 grey images. gan.py wraps these bodies in its
Generator and Discriminator (labels, projection), so everything else treats them alike.
"""

from __future__ import annotations

from torch import nn

from config import Config


def dense(cin: int, cout: int, act: nn.Module, norm: bool = False, dropout: float = 0.0) -> list[nn.Module]:
    """Linear -> [BatchNorm] -> activation -> [Dropout]. BatchNorm makes the bias redundant, so it has none."""
    return [nn.Linear(cin, cout, bias=not norm), *([nn.BatchNorm1d(cout)] if norm else []), act,
            *([nn.Dropout(dropout)] if dropout else [])]


def generator_body(cfg: Config, z: int) -> nn.Sequential:
    """z (B, z) -> (B, 1, 28, 28) in [-1, 1]; `z` counts the one-hot label of a conditional model too."""
    if cfg.arch in ("mlp", "mlp-bn"):
        norm = cfg.arch == "mlp-bn"
        act = (lambda: nn.LeakyReLU(0.2, inplace=True)) if cfg.g_act == "leaky" or norm else (lambda: nn.ReLU(True))
        return nn.Sequential(*dense(z, 256, act(), norm), *dense(256, 512, act(), norm),
                             *dense(512, 1024, act(), norm), nn.Linear(1024, 784, bias=not norm), nn.Tanh(),
                             nn.Unflatten(1, (1, 28, 28)))                     # (B, 784) -> (B, 1, 28, 28)
    leaky = lambda: nn.LeakyReLU(0.3, inplace=True)  # Keras' LeakyReLU default slope
    return nn.Sequential(*dense(z, 7 * 7 * 128, leaky(), norm=True),
                         nn.Unflatten(1, (128, 7, 7)),                           # (B, 6272) -> (B, 128, 7, 7)
                         nn.ConvTranspose2d(128, 64, 5, 1, 2, bias=False), nn.BatchNorm2d(64), leaky(),  # 7x7
                         nn.ConvTranspose2d(64, 32, 5, 2, 2, 1, bias=False), nn.BatchNorm2d(32), leaky(),  # 14x14
                         nn.ConvTranspose2d(32, 1, 5, 2, 2, 1, bias=False),     # -> (B, 1, 28, 28)
                         nn.Tanh())


def discriminator_features(cfg: Config) -> tuple[nn.Sequential, int]:
    """(B, 1, 28, 28) -> features (B, n), and n."""
    if cfg.arch in ("mlp", "mlp-bn"):
        norm, p, leaky = cfg.arch == "mlp-bn", cfg.d_dropout, lambda: nn.LeakyReLU(0.2, inplace=True)
        return nn.Sequential(nn.Flatten(),                                       # (B, 1, 28, 28) -> (B, 784)
                             *dense(784, 1024, leaky(), norm, p), *dense(1024, 512, leaky(), norm, p),
                             *dense(512, 256, leaky(), norm, p)), 256           # -> (B, 256)
    leaky = lambda: nn.LeakyReLU(0.2, inplace=True)  # two strided 5x5 convolutions with Dropout(0.3)
    return nn.Sequential(nn.Conv2d(1, 64, 5, 2, 2), leaky(), nn.Dropout(0.3),     # -> (B, 64, 14, 14)
                         nn.Conv2d(64, 128, 5, 2, 2), leaky(), nn.Dropout(0.3),  # -> (B, 128, 7, 7)
                         nn.Flatten()), 128 * 7 * 7                              # -> (B, 6272)
