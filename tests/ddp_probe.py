"""``python tests/ddp_probe.py OUT KEY=VALUE...``: train with the given overrides and write what each rank
ended with to ``OUT/rank<r>.json`` (step, a digest of its weights, its validation metrics, its skipped
samples). A script, not ``python -c``: Lightning starts the other DDP ranks by re-running ``sys.argv``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import lightning as L

from sandwich.config import compose
from sandwich.training import quiet_lightning, train


class RankReport(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        digest = hashlib.sha256()
        for name, tensor in sorted(pl_module.state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        report = {
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "weights": digest.hexdigest(),
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")},
            "skipped": trainer.datamodule.skipped_samples,
        }
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    quiet_lightning()
    train(compose(sys.argv[2:]), [RankReport(Path(sys.argv[1]))])
