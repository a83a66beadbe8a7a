"""Personalised artwork: choose the image of each shown title per member, by contextual bandit.

The artwork choice happens after the title choice (:class:`WithArtwork` wraps any page policy
with an :class:`ArtworkSelector`); plays are credited to the image given the title
(:class:`ArtworkRows`); the bandits (:class:`EpsilonGreedyArtwork`, :class:`LinUCBArtwork`,
:class:`ThompsonArtwork`) report exact image propensities; :class:`UniformArtwork` is the
image-explore mode; :func:`replay_take_fraction` and :func:`evaluate_artwork_policy` estimate the
take fraction offline; :func:`render_artwork` draws the images. See ``docs/artwork.md``.
"""

from reelpick.artwork.argmax import normal_argmax_probabilities
from reelpick.artwork.bandits import (
    ArtworkBanditConfig,
    EpsilonGreedyArtwork,
    LinUCBArtwork,
    ThompsonArtwork,
)
from reelpick.artwork.catalog import GENRE_THEME, ArtworkCatalog
from reelpick.artwork.evaluation import (
    TakeFraction,
    evaluate_artwork_policy,
    model_reward_hat,
    replay_take_fraction,
)
from reelpick.artwork.features import ArtworkHistory, FeatureConfig
from reelpick.artwork.feedback import ArtworkRows
from reelpick.artwork.render import render_artwork, write_artwork_images
from reelpick.artwork.selector import (
    ArtworkChoice,
    ArtworkSelector,
    UniformArtwork,
    WithArtwork,
    image_explore,
)

__all__ = [
    "GENRE_THEME",
    "ArtworkBanditConfig",
    "ArtworkCatalog",
    "ArtworkChoice",
    "ArtworkHistory",
    "ArtworkRows",
    "ArtworkSelector",
    "EpsilonGreedyArtwork",
    "FeatureConfig",
    "LinUCBArtwork",
    "TakeFraction",
    "ThompsonArtwork",
    "UniformArtwork",
    "WithArtwork",
    "evaluate_artwork_policy",
    "image_explore",
    "model_reward_hat",
    "normal_argmax_probabilities",
    "render_artwork",
    "replay_take_fraction",
    "write_artwork_images",
]
