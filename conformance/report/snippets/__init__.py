"""A short program in a framework's own API that reproduces a case: the layer built with the
neutral parameters translated (each translation commented on its line), then the steps as
``train()``/``eval()`` calls (torch, Paddle) or ``training=True/False`` (Keras), printing
what the case observes.

Translations, with ``w`` the spec's ``update_weight`` (the weight of the NEW batch statistic
in ``running <- (1 - w) * running + w * batch``):

- torch ``momentum = w``; a cumulative average is ``momentum=None``.
- Paddle and Keras ``momentum = 1 - w`` (their momentum weighs the OLD value).
- ``eps`` is torch's ``eps`` and Paddle's / Keras' ``epsilon``; the channel axis is Paddle's
  ``data_format`` and Keras' ``axis``; ``affine`` is torch's ``affine``, Paddle's
  ``weight_attr``/``bias_attr=False`` and Keras' ``center``/``scale``.

One module per framework (``torch``, ``paddle``, ``tf``), each with the same functions:
``imports()``, ``tensor(name, dtype)`` (the numpy input ``name`` as a tensor, converted as
the kit's adapter converts it), ``batch_norm(layer, dtype, name="layer")``,
``dropout(layer, dtype, name="layer")`` (``name``: the variable the layer is built into),
``reset(layer)``, ``compiler()`` (defines ``compiled``), ``prints(observe)`` and
``forward(step, layer, observe, switch)``; and the same class, ``ModelSnippet``.

A model program (``program["layer"]["kind"] == "model"``, ``conformance.tree``) is written by
that framework's ``ModelSnippet``, a subclass of ``models.ModelSnippet`` (the shared walk)
that fills in the same methods: every leaf built into a variable of its name with the
translated parameters (the same ``batch_norm``/``dropout`` as a layer's; torch's Linear holds
W as the spec gives it, Paddle's Linear and Keras' Dense hold W^T, each said at its line), the
spec's weights and initial values set exactly, nested blocks as the framework's Sequential, a
custom container as a small class whose forward/call calls its children in order with their
call-site flags (functional forms with ``training=``, Keras ``child(x, training=...)``, a
train()/eval() override that does not delegate for ``override_mode_switch``); then the
steps in the framework's idiom (``train``/``eval``/``call``/``predict``, ``train_step`` by
hand or Keras ``train_on_batch`` with a ``sum(y_true * y_pred)`` loss of reduction ``sum``,
the framework's Monte Carlo dropout recipe, the mode switch, the framework's freeze), each
followed by prints of what it observes (``bn1.running_mean``, ``output``). A construction
the framework cannot express is written as the framework can and commented ``unsupported:``
at its line; a step it cannot express ends the snippet with a comment saying why (the case is
``unsupported`` there): nothing is emulated.

Inputs are the case's own: the program says how each is made (``Case.input_program``), and
the snippet makes the same numpy float64 array (the generator's calls with the spec's seed,
the literal values, or ``np.load`` of the array file beside the spec), rounds it to the
case's dtype in numpy as the kit does (bfloat16 by the kit's own rounding) and converts it as
the framework's adapter does. A results file written before programs kept this has only the
shapes: its snippets use random inputs, and say so. Dropout masks come from the framework's
own generator, so a dropout snippet reproduces the rule for kept values, not the exact masks.
"""

from __future__ import annotations

import importlib
from typing import Any

from conformance.report.snippets import common

Program = dict[str, Any]
FRAMEWORKS = ("torch", "paddle", "tf")


def snippet(program: Program, framework: str, until_step: int | None = None,
            focus: list[str] | None = None) -> str:
    """Code for ``framework`` (torch, paddle, tf) running ``program``'s steps up to
    ``until_step`` (all by default) and printing the observed quantities (only those in
    ``focus`` when given). Empty for other frameworks."""
    if framework not in FRAMEWORKS:
        return ""
    api = importlib.import_module(f"conformance.report.snippets.{framework}")
    layer, dtype = program["layer"], program.get("dtype", "float32")
    steps = program["steps"][: None if until_step is None else until_step + 1]
    names = list(dict.fromkeys(n for s in steps for n in (s.get("input"), s.get("grad_output")) if n))
    if layer.get("kind") == "model":  # a model case: the framework module's ModelSnippet
        model = api.ModelSnippet(program)
        lines = [*api.imports(), *model.imports(), "", *_inputs(api, program, names, dtype), *model.lines(steps, focus)]
        return "\n".join(lines) + "\n"
    lines = [*api.imports(), "", *_inputs(api, program, names, dtype)]
    construction = (api.batch_norm if layer.get("kind") == "batch_norm" else api.dropout)(layer, dtype)
    lines += construction
    mode, compiled = "", False
    for i, step in enumerate(steps):
        action = step.get("action", "forward")
        wanted = [q for q in step.get("observe", ["output"]) if focus is None or q in focus]
        if action == "rebuild":
            lines += ["", f"# step {i}: rebuild the layer from the spec (same seed)", *construction]
            mode, compiled = "", False
        elif action == "reset":
            lines += ["", f"# step {i}: reset the running statistics (mean 0, variance 1)",
                      *api.reset(layer), *api.prints(wanted)]
        else:
            context = step.get("context", "plain")
            where = "" if context == "plain" else f", {context}"
            lines += ["", f"# step {i}: {step['mode']} on {step['input']}{where}"]
            if context == "compiled" and not compiled:  # compile once, as the adapters do
                lines += api.compiler()
                compiled = True
            lines += api.forward(step, layer, wanted, step["mode"] != mode)
            mode = step["mode"]
    return "\n".join(lines) + "\n"


def _inputs(api: Any, program: Program, names: list[str], dtype: str) -> list[str]:
    """Each input the steps use: the numpy array as the kit makes it, then the tensor."""
    sources = {n: common.input_source(program["inputs"][n]) for n in names if n in program["inputs"]}
    lines = common.input_preamble(list(sources.values()), dtype)
    for name, source in sources.items():
        lines += [common.input_array(name, source, dtype), api.tensor(name, dtype)]
    return lines
