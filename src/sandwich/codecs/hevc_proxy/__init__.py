"""The HEVC-intra proxy: a differentiable model of x265 coding one picture at a constant QP.

Modules: :mod:`.tables` (QP laws and HEVC's tables), :mod:`.transforms` (DCT-II and DST-VII, the
dead-zone quantiser, per-block statistics), :mod:`.intra` (closed-loop intra prediction in block
wavefronts), :mod:`.deblock` (the in-loop deblocking filter), :mod:`.rate` (the rate model fitted on
x265's payload bits by :mod:`sandwich.fitting.hevc_rate`), :mod:`.proxy` (the pipeline and the registered proxy).
"""
