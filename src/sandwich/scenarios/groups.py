"""More channels than the codec has: an N-channel source coded as G pictures of the codec's C channels.

The pre-processor maps the source's N channels to a ``G x C`` bottleneck, the codec codes each group of C
channels as its own picture (:class:`~sandwich.scenarios.adapters.ChannelGroups`), the bits of an image's
G pictures are summed (bpp per source pixel), and the post-processor sees every decoded group at once.
The bypasses place the source's channels into the groups and back (``channel_pack`` /
``channel_unpack``, :mod:`sandwich.nets.channel_maps`), so with identity networks the sandwich is the
per-group baseline: each group coded on its own by the plain codec, rates summed. A stereo pair (6
channels) over an RGB codec is 2 groups; RGBA over an RGB codec is 2 groups, alpha repeated as a gray
picture (``scenario.gray_groups``: kept gray, so that a codec with ``gray_pictures`` writes it as a
grayscale picture). ``scenario.parts`` names channel ranges whose distortion the evaluation reports on its own.
"""

from __future__ import annotations

from typing import Any

from sandwich.scenarios.adapters import Adapter, ChannelGroups
from sandwich.scenarios.base import SandwichModule


class GroupedSandwich(SandwichModule):
    """:class:`SandwichModule` whose codec codes ``scenario.groups`` pictures per source image.

    Building it raises InputError when ``scenario.groups`` is not an integer >= 1 or the bypasses do not
    map ``scenario.channels`` to ``groups x`` the codec's channels and back.
    """

    def learned_options(self) -> dict[str, Any]:
        """The ``net`` options, and with ``scenario.share_groups`` networks shared by the groups (each group's
        correction from all groups, its own first; for sources of equal groups, e.g. a stereo pair's views)."""
        return super().learned_options() | ({"groups": self.config["scenario"]["groups"]} if self.config["scenario"].get("share_groups") else {})

    def make_adapter(self) -> Adapter:  # noqa: D102
        scenario = self.config["scenario"]
        return ChannelGroups(scenario["groups"], scenario.get("gray_groups") or ())
