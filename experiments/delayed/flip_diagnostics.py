"""How good is the flip model z(x, e, g), and how good could it be? (issue #5, simulator only.)

On the simulator the true posterior of an observed negative flipping, z*(x, e, g), is computable
(:meth:`DelayedFeedbackSimulator.flip_posterior`); with and without engagement it is the ceiling a flip model
can reach.

The script fits flip models the way the streaming protocol does (pretraining window, clicks at least
``--maturity`` hours old, labels known at its end; then one update per interval; its own plain Adam loop
with batches of 256, so a variant takes seconds), then scores on the waiting stream's observed negatives of
the streaming intervals (the records the weights are used on, at elapsed time ``--wait``): AUC for
"eventually converts", NLL, ECE and mean z, and the same for z* with and without engagement. One JSON line
per call; the simulator is the ``delayed_sim`` config with data seed ``--seed``. The variants (``VARIANTS``)
differ in engagement inputs, cut distribution, capacity, epochs and lr.

    python experiments/delayed/flip_diagnostics.py [--seed 0] [--wait 0.25] [--maturity 24] [--variants NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from recsci.delayed.auxiliary import AuxiliaryModel
from recsci.delayed.data import ClickLog
from recsci.delayed.metrics import binary_metrics
from recsci.delayed.simulator import DelayedFeedbackSimulator
from recsci.delayed.streams import FIRST, Records, auxiliary_examples, stream_records

SIM = dict(
    num_clicks=100_000,
    days=10.0,
    engagement_given_conversion=(0.6, 0.3),
    engagement_given_no_conversion=(0.04, 0.03),
    engagement_mean_hours=(0.5, 2.0),
)
PRETRAIN, INTERVAL, MATURITY, WAIT = 72.0, 12.0, 24.0, 0.25


def fit(
    model: AuxiliaryModel,
    optimizer: torch.optim.Optimizer,
    log: ClickLog,
    records: Records,
    epochs: int,
    batch: int,
    seed: int,
) -> None:
    """The protocol's fit in a plain loop (Adam, shuffled mini-batches), to keep this script fast."""
    inputs = model.inputs(log, records)
    label = torch.from_numpy(records.label)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(records), generator=gen)
        for i in range(0, len(order), batch):
            rows = order[i : i + batch]
            loss = binary_cross_entropy_with_logits(
                model(inputs["x"][rows], inputs["extra"][rows]), label[rows]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def run(
    seed: int, variants: dict[str, dict], wait: float = WAIT, maturity: float = MATURITY, batch: int = 256
) -> dict:
    torch.manual_seed(seed)
    sim = DelayedFeedbackSimulator(**SIM, seed=seed)
    log = sim.load()
    span = log.span_hours
    intervals = [(s, s + INTERVAL) for s in np.arange(PRETRAIN, span - 2 * INTERVAL + 1e-9, INTERVAL)]
    stream = Records.concat(
        [
            stream_records(log, "waiting", a, b, wait=wait, first_click=PRETRAIN, duplicates_from=0.0)
            for a, b in intervals
        ]
    )
    neg = (stream.kind == FIRST) & (stream.label == 0)
    negatives = Records(*(getattr(stream, f)[neg] for f in Records.__dataclass_fields__))
    flipped = np.isfinite(log.conv_ts[negatives.index]).astype(np.float64)
    out = {"seed": seed, "negatives": len(negatives), "flip_rate": float(flipped.mean())}
    for name, use in (("truth_engagement", True), ("truth_none", False)):
        engaged = negatives.engagement(log, list(range(len(log.engagement_names)))) if use else None
        z_true = sim.flip_posterior(log, negatives.index, negatives.elapsed(log), engaged)
        out[name] = _scores(z_true, flipped)
    rng = np.random.default_rng(seed)
    for name, settings in variants.items():
        t0 = time.perf_counter()
        model = AuxiliaryModel(target="flip", **settings)
        model.build(log)
        optimizer = torch.optim.Adam(model.net.parameters(), lr=model.lr)
        windows = [None, *intervals]
        for k, window in enumerate(windows):
            first, observe = (
                (0.0, PRETRAIN) if window is None else (max(0.0, window[0] - maturity), window[1])
            )
            records = auxiliary_examples(
                log, "flip", first, observe, maturity, wait, model.cut, model.cuts_per_example,
                model.min_cut_hours, model.max_cut_hours, rng,
            )  # fmt: skip
            fit(model, optimizer, log, records, model.epochs if window is None else 1, batch, seed + k)
        z = model.predict_records(log, negatives).numpy()
        out[name] = _scores(z, flipped) | {"seconds": round(time.perf_counter() - t0, 1)}
    return out


def _scores(z: np.ndarray, y: np.ndarray) -> dict:
    m = binary_metrics(z, y)
    return {k: round(float(m[k]), 4) for k in ("auc", "nll", "ece", "mean_pred")}


BASE = dict(embed_dim=8, hidden=(32,), lr=3e-3, epochs=2)
VARIANTS = {
    "none_wait": dict(signals="none", use_elapsed=False, cut="wait") | BASE,
    "eng_random": dict(signals="all", use_elapsed=True, cut="random", cuts_per_example=2, max_cut_hours=24.0)
    | BASE,
    "eng_wait": dict(signals="all", use_elapsed=False, cut="wait") | BASE,
    "none_wait_e4": dict(signals="none", use_elapsed=False, cut="wait") | BASE | dict(epochs=4),
    "eng_wait_e4": dict(signals="all", use_elapsed=False, cut="wait") | BASE | dict(epochs=4),
    "eng_wait_big": dict(signals="all", use_elapsed=False, cut="wait")
    | BASE
    | dict(hidden=(64, 32), embed_dim=16),
    "eng_wait_lr1e-2": dict(signals="all", use_elapsed=False, cut="wait") | BASE | dict(lr=1e-2),
    "eng_random_near": dict(
        signals="all", use_elapsed=True, cut="random", cuts_per_example=2, max_cut_hours=2.0
    )
    | BASE,
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--wait", type=float, default=WAIT, help="waiting window: the elapsed time z is used at"
    )
    parser.add_argument("--maturity", type=float, default=MATURITY, help="aux_maturity_hours")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = run(args.seed, {k: VARIANTS[k] for k in args.variants}, args.wait, args.maturity)
    print(json.dumps(result | {"wait": args.wait, "maturity": args.maturity}))
