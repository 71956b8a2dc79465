"""The JFIF colour transform (full-range ITU-R BT.601): the one place its constants are written.

Rows of :data:`RGB_TO_YCBCR` give Y, Cb, Cr from R, G, B (Cb and Cr centred at 0 here; coders add half
the range); they are JFIF's five-digit values, as libjpeg fixes them (``FIX(0.16874)``, ...).
:data:`YCBCR_TO_RGB` is the inverse JFIF specifies. :data:`BT601_LUMA` is the luma row: PSNR-Y, the
texture embedding and colour augmentation weigh R, G, B with it.
"""

from __future__ import annotations

BT601_LUMA = (0.29900, 0.58700, 0.11400)
RGB_TO_YCBCR = (
    BT601_LUMA,
    (-0.16874, -0.33126, 0.50000),
    (0.50000, -0.41869, -0.08131),
)
YCBCR_TO_RGB = (
    (1.0, 0.0, 1.402),
    (1.0, -0.344136286, -0.714136286),
    (1.0, 1.772, 0.0),
)
