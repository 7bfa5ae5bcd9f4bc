"""The conventions table: one row per framework, version and device, every fact measured by
a probe case (its ``measures``), with the id of the case that established it.

Nothing here is typed in by hand: a fact that no case measured is absent. The one derived
fact, ``bn.default_momentum`` (the framework's own default momentum argument), is computed
from two measured ones: the default update weight w and which value the momentum weighs
(``new``: momentum = w; ``old``: momentum = 1 - w); its evidence names both cases.
"""

from __future__ import annotations

import json
from typing import Any

CONVENTIONS_SCHEMA = "conformance.conventions/1"

EXPLANATIONS: dict[str, str] = {
    "bn.default_update_weight": "weight of the new batch statistic in the running average, by default",
    "bn.default_momentum": "the default of the framework's own momentum argument",
    "bn.momentum_weights": "which value the framework's momentum multiplies: the new batch statistic or the old running value",
    "bn.default_eps": "default eps added to the variance",
    "bn.running_var_estimator.rank2": "variance estimator feeding the running variance, (N, C) input",
    "bn.running_var_estimator.rank3": "variance estimator feeding the running variance, (N, C, L) input",
    "bn.running_var_estimator.rank4": "variance estimator feeding the running variance, (N, C, H, W) input",
    "bn.running_var_estimator.rank5": "variance estimator feeding the running variance, (N, C, D, H, W) input",
    "bn.eps_placement": "where eps goes: added to the variance inside the square root, or to the standard deviation",
    "bn.normalization_var_estimator": "variance that normalises the output in training (biased: divide by m)",
    "bn.train_statistics": "statistics that normalise in training: the batch's, or the running ones",
    "bn.eval_statistics": "statistics that normalise in inference: the running ones, or the batch's",
    "bn.eval_updates": "whether an inference pass updates the running statistics",
    "bn.single_value_per_channel_train": "training on one value per channel (batch of one, no spatial extent)",
    "bn.cumulative_average": "cumulative moving average of all batches (PyTorch momentum=None)",
    "bn.batch_count": "a counter of training batches seen",
    "bn.no_running_stats": "a layer without running statistics (batch statistics in eval too)",
    "dropout.rate_meaning": "whether the framework's rate argument is the probability to drop or to keep",
    "dropout.train_scale": "scaling of kept values in training",
    "dropout.eval": "dropout in inference",
    "dropout.rate_one_train": "rate 1 in training",
    "dropout.downscale_mode": "downscale-in-inference mode (unscaled training, (1-p) in eval)",
    "dropout.channel": "channel-wise dropout (one draw per sample and channel)",
    "model.eval_propagates": "how far the model's mode switch reaches: every descendant three containers deep (all), the root's children (partial), the root only (none)",
    "model.freeze_survives_mode_switch": "a batch norm frozen the framework's way (eval() on it; Keras trainable=False), then the model switched to training again: is it still frozen",
    "model.call_site_flag.call": "a call site's hard-coded training flag, the model run by a plain call in the other mode: honoured, or overridden by the model's mode",
    "model.call_site_flag.inference": "a call site's hard-coded training flag under the inference idiom (eval() then a call; Keras training=False)",
    "model.call_site_flag.predict": "a call site's hard-coded training flag under predict (Keras)",
    "model.call_site_flag.train_step": "a call site's hard-coded training flag inside a training step (Keras train_on_batch; a step by hand)",
    "model.override_respected": "a nested custom container's override of train()/eval(): called by the parent's switch (true), or bypassed, the parent setting every descendant's mode itself (false)",
    "model.predict_switches": "whether predict leaves the model's mode as it was (false) or switches it to inference (true)",
    "model.freeze_scope": "what a frozen batch norm keeps: its statistics only (its scale and shift still learn), or everything (the layer learns nothing)",
    "model.call_flag_scope": "how far a hard-coded call-site flag reaches: that call only, or every later call of the same forward pass that gives none",
    "model.call_mode": "the mode of a plain call (no training argument) after a training call and after an inference call: the model's current mode, always inference, or always training",
    "model.train_step_mode": "the mode a training step runs the layers in: the model's current mode, or always training",
    "model.mc_dropout": "the framework's Monte Carlo dropout recipe: dropout active, batch norm on its running statistics, nothing updated",
    "functional.dropout.default_training": "the functional dropout called without a training flag: drops (true) or not (false)",
    "functional.batch_norm.default_training": "the functional batch norm called without a training flag: batch statistics and an update (true), or the running statistics (false)",
}


COMPENSATION: dict[str, str] = {
    "bn.default_momentum": "Never copy the momentum value between frameworks: translate the weight of the new value (PyTorch momentum = w; Paddle and Keras momentum = 1 - w). `conformance port` does it.",
    "bn.default_update_weight": "Defaults differ (Keras 0.01 against 0.1 elsewhere): pass the value explicitly when porting, or the running statistics move ten times slower.",
    "bn.momentum_weights": "PyTorch's momentum weighs the new batch statistic, Paddle's and Keras' the old running value: momentum_target = 1 - momentum_source between them.",
    "bn.default_eps": "Keras defaults to 1e-3, PyTorch and Paddle to 1e-5: pass eps/epsilon explicitly; with small variances the outputs differ visibly otherwise.",
    "bn.running_var_estimator.rank2": "Biased and unbiased running variances differ by m/(m-1) for m values per channel per batch. No argument changes it; when converting trained statistics nothing needs changing, but continued training drifts; for small m (small batches) rescale by m/(m-1) or (m-1)/m after the update, or re-estimate the statistics in the target framework.",
    "bn.running_var_estimator.rank3": "As for rank 2: the factor m/(m-1) with m = N * L.",
    "bn.running_var_estimator.rank4": "As for rank 2: the factor m/(m-1) with m = N * H * W, small unless batches and images are tiny.",
    "bn.running_var_estimator.rank5": "As for rank 2: the factor m/(m-1) with m = N * D * H * W.",
    "bn.eps_placement": "Frameworks that add eps to the standard deviation differ visibly only when the variance is comparable to eps (small-variance features, large eps): (x - mu) / (sigma + eps) cannot be matched by another eps for every variance; re-normalise by hand or keep eps small against the variances.",
    "bn.normalization_var_estimator": "Normalising by the unbiased variance scales training outputs by sqrt((m-1)/m) against the biased one (m values per channel); it vanishes for large batches and matters for tiny ones. No argument changes it.",
    "bn.train_statistics": "A training pass that normalises with the running statistics is an inference-mode layer inside a training graph (a converter that exported BatchNorm for inference, a layer left in eval()); keep it in training mode, or freeze it on purpose (eval() / use_global_stats / trainable=False).",
    "bn.eval_statistics": "Inference normalising with batch statistics is a layer that was never switched to eval (model.eval() / training=False); batch-of-one inference then normalises every sample to the shift.",
    "bn.eval_updates": "Inference passes that move the running statistics make results depend on what was evaluated before; switch the layer to eval mode (or use_global_stats=True in Paddle) for inference, and re-estimate the statistics if they moved.",
    "bn.single_value_per_channel_train": "Training on one value per channel is meaningless (variance 0); frameworks refuse it or return the shift or the input. Keep batch-of-one inference in eval mode, and freeze BN (eval mode / use_global_stats / trainable=False) when fine-tuning with tiny batches.",
    "bn.cumulative_average": "PyTorch's momentum=None has no equivalent elsewhere; emulate it by setting the target's update weight to 1/k before the k-th batch (momentum 1 - 1/k in Paddle/Keras), or re-estimate statistics with a reset and a pass over the data.",
    "bn.batch_count": "Only PyTorch counts batches (num_batches_tracked); drop it when converting to Paddle or Keras and set it to 0 (or the known count) when converting to PyTorch.",
    "bn.no_running_stats": "track_running_stats=False (PyTorch) corresponds to use_global_stats=False in Paddle; Keras has no equivalent: call the layer with training=True at inference time to normalise with batch statistics.",
    "dropout.rate_meaning": "All three take the probability to drop; TensorFlow 1's keep_prob was the probability to keep (rate = 1 - keep_prob).",
    "dropout.train_scale": "All three scale kept values by 1/(1-p) in training (inverted dropout).",
    "dropout.eval": "Inference is the identity in all three, unless Paddle's mode='downscale_in_infer' is chosen, which scales by (1-p) at inference instead.",
    "dropout.rate_one_train": "p = 1 drops everything: all zeros in training.",
    "dropout.downscale_mode": "Only Paddle has downscale_in_infer; elsewhere multiply the output by (1-p) in eval and drop the 1/(1-p) training scale yourself (scale the input by (1-p) before inverted dropout).",
    "dropout.channel": "Channel-wise dropout: torch Dropout1d/2d/3d, Keras SpatialDropout1D/2D/3D, Paddle Dropout(axis=[0, channel_axis]) or Dropout2D/3D.",
    "model.eval_propagates": "A custom container whose train()/eval() override does not call super() leaves its children in their old mode: delegate (super().train(mode)), or switch the children yourself.",
    "model.freeze_survives_mode_switch": "PyTorch and Paddle: bn.eval() is undone by the next model.train(); freeze again after every model.train() (override train() to do it), or use Paddle's use_global_stats=True. Keras: trainable=False stays, and a non-trainable BatchNormalization runs in inference mode.",
    "model.call_site_flag.call": "A hard-coded training flag at a call site wins over the model's mode where the framework has one (Keras layers, PyTorch/Paddle functional forms); PyTorch and Paddle layer objects take no flag: set their mode (eval()) instead.",
    "model.call_site_flag.inference": "As for a plain call: the flag written at the call site decides.",
    "model.call_site_flag.predict": "As for a plain call: the flag written at the call site decides.",
    "model.call_site_flag.train_step": "As for a plain call: a sub-model called with training=False stays in inference inside fit/train_on_batch.",
    "model.override_respected": "Paddle's Layer.train()/eval() set the mode of every sublayer directly, so a nested container's own override (to keep its batch norms frozen, say) never runs: freeze with use_global_stats=True, or re-freeze after each switch at the top level.",
    "model.predict_switches": "Paddle's paddle.Model.predict_batch calls eval() on the network and leaves it there: call train() again before training by hand.",
    "model.freeze_scope": "Keras' trainable=False also stops gamma and beta from learning; PyTorch's eval() and Paddle's use_global_stats freeze only the statistics: to match Keras, also set requires_grad_(False) / stop_gradient on the batch norm's weight and bias.",
    "model.call_flag_scope": "In Keras 3 a layer called with training=False inside a training forward pass leaves that value in the call context, so later layers called without a flag infer too: pass training= explicitly to every later call, or wrap the frozen part in its own sub-model.",
    "model.call_mode": "Keras: model(x) without training= infers even right after a training call; PyTorch, Paddle and Flax NNX: model(x) runs in the mode last set by train()/eval(); Flax linen: apply without train= runs in the module's default (train=True in Flax's examples: it trains even after an inference pass). When porting, pass training=/train= explicitly in Keras and linen, and call eval() before inference in PyTorch, Paddle and NNX.",
    "model.train_step_mode": "PyTorch and Paddle: a step written by hand runs in the model's current mode, so a missing model.train() after an evaluation trains with dropout off and frozen statistics; Keras' fit/train_on_batch always train.",
    "model.mc_dropout": "Monte Carlo dropout: PyTorch and Paddle model.eval() then dropout.train() on every dropout layer; Keras a Dropout subclass whose call forces training=True. Never call the whole model in training mode: batch norm would update its statistics.",
    "functional.dropout.default_training": "torch.nn.functional.dropout and paddle.nn.functional.dropout default to training=True: inside a forward, pass training=self.training, or they drop in inference too.",
    "functional.batch_norm.default_training": "torch.nn.functional.batch_norm and paddle.nn.functional.batch_norm default to training=False: inside a forward, pass training=self.training, or they never update the running statistics and normalise with them in training too.",
}


def rows(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{framework, framework_version, device, facts, evidence}`` per results document
    that measured anything; two cases measuring one fact differently give a conflict, except
    that a value outweighs ``unsupported`` (one way of doing it is missing, another was
    measured: a call-site flag on a functional form against one on a layer object)."""
    table = []
    for doc in sorted(documents, key=lambda d: (d["framework"], d["device"])):
        facts: dict[str, Any] = {}
        evidence: dict[str, str] = {}
        for case in doc["cases"]:
            for fact, value in case.get("facts", {}).items():
                if fact in facts and "unsupported" in (facts[fact], value) and facts[fact] != value:
                    # one way of doing it is unsupported, another was measured: the measurement
                    if facts[fact] == "unsupported":
                        facts[fact], evidence[fact] = value, case["id"]
                    continue
                if fact in facts and facts[fact] != value:
                    facts[fact] = f"conflict: {facts[fact]} ({evidence[fact]}) vs {value} ({case['id']})"
                    evidence[fact] = f"{evidence[fact]}, {case['id']}"
                    continue
                facts[fact], evidence[fact] = value, case["id"]
        _derive_default_momentum(facts, evidence)
        if facts:
            table.append({"framework": doc["framework"], "framework_version": doc["framework_version"],
                          "device": doc["device"], "facts": dict(sorted(facts.items())),
                          "evidence": dict(sorted(evidence.items()))})
    return table


def _derive_default_momentum(facts: dict[str, Any], evidence: dict[str, str]) -> None:
    weight, weighs = facts.get("bn.default_update_weight"), facts.get("bn.momentum_weights")
    if not isinstance(weight, (int, float)) or weighs not in ("new", "old"):
        return
    facts["bn.default_momentum"] = round(weight if weighs == "new" else 1.0 - weight, 6)
    evidence["bn.default_momentum"] = (f"{evidence['bn.default_update_weight']}, "
                                       f"{evidence['bn.momentum_weights']}")


def to_json(table: list[dict[str, Any]]) -> str:
    return json.dumps({"schema": CONVENTIONS_SCHEMA, "rows": table}, indent=1, sort_keys=True)


def to_markdown(table: list[dict[str, Any]]) -> str:
    """Facts as rows, framework/version/device as columns, evidence case ids below."""
    if not table:
        return "No conventions were measured: run the probe cases (specs with `measures`).\n"
    columns = [f"{r['framework']} {r['framework_version']} ({r['device']})" for r in table]
    facts = sorted({f for r in table for f in r["facts"]})
    lines = ["| fact | " + " | ".join(columns) + " | meaning |",
             "|---" * (len(columns) + 2) + "|"]
    for fact in facts:
        cells = [_cell(r["facts"].get(fact, "")) for r in table]
        lines.append(f"| `{fact}` | " + " | ".join(cells) + f" | {EXPLANATIONS.get(fact, '')} |")
    lines += ["", "Evidence: the case whose observation established each cell.", "",
              "| fact | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for fact in facts:
        cases = {c for r in table for c in [r["evidence"].get(fact, "")]}
        if len(cases) == 1:  # the usual case: one probe measured the fact everywhere
            lines.append(f"| `{fact}` | " + " | ".join(f"`{next(iter(cases))}`" if r["evidence"].get(fact)
                                                       else "" for r in table) + " |")
        else:
            lines.append(f"| `{fact}` | " + " | ".join(_cell(r["evidence"].get(fact, "")) for r in table) + " |")
    return "\n".join(lines) + "\n"


def to_document(table: list[dict[str, Any]], documents: list[dict[str, Any]]) -> str:
    """The conventions document (docs/conventions.md): the measured table, stamped with the
    versions and machines it was measured on, then each fact explained with how to
    compensate when porting. Deterministic: the same results give the same text."""
    lines = ["# Conventions of BatchNorm and Dropout, measured", "",
             ("Generated by `conformance conventions docs/results --format doc > docs/conventions.md` "
              "from the results files in `docs/results/`. Every cell was measured by the case named "
              "under *Evidence*; nothing is typed in by hand. Regenerate after a new run."), "",
             "Measured on:", ""]
    for doc in sorted(documents, key=lambda d: (d["framework"], d["device"])):
        env = doc.get("environment", {})
        lines.append(f"- **{doc['framework']} {doc['framework_version']}** on {doc['device']} "
                     f"({env.get('device_name', doc['device'])}; Python {env.get('python', '?')}, "
                     f"{env.get('platform', '?')}), run finished {doc.get('finished', '?')}")
    lines += ["", "## The table", "", to_markdown(table).rstrip(), "", "## What each row means, and how to port", ""]
    facts = sorted({f for r in table for f in r["facts"]})
    for fact in facts:
        values = ", ".join(f"{r['framework']}: `{r['facts'][fact]}`" for r in table if fact in r["facts"])
        lines += [f"### `{fact}`", "", f"{EXPLANATIONS.get(fact, '')}. Measured: {values}.", "",
                  COMPENSATION.get(fact, ""), ""]
    return "\n".join(lines).rstrip() + "\n"


def _cell(value: Any) -> str:
    return "" if value == "" else f"`{value}`"
