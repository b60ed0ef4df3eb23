"""Hardware-aware training: an optax loop for networks with a crossbar tile's forward model in the loop.

`train` runs an optax optimizer with a jitted step. The minibatch and the noise key of step s depend only
on the base key and s, so a run resumed from a checkpoint is bit-identical to an uninterrupted one. The
networks (`AnalogNetwork`, `AnalogDense`, `AnalogConv2D`) and read-time horizons are defined in
`xbar.learning.analog` and re-exported here.

Example (the digits MLP trained for PCM read between 1 s and 1 year after programming, with global
drift compensation)::

    import jax, optax
    from xbar.crossbar import Tile
    from xbar.devices import PCM
    from xbar.learning.training import AnalogNetwork, LogUniformReadTime, train
    from xbar.studies import load_digits_split

    x_train, y_train, x_test, y_test = load_digits_split(0.2, seed=0)
    network = AnalogNetwork.mlp(
        (64, 32, 10), Tile(device=PCM(), weight_range=1.0, drift_compensation=True),
        read_time=LogUniformReadTime(1.0, 3.15e7),
    )

    def loss_fn(params, batch, key):
        x, y = batch
        logits = network(params, x, key=key)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    key_init, key_train = jax.random.split(jax.random.key(0))
    result = train(
        loss_fn, network.init(key_init), (x_train, y_train), optimizer=optax.adam(1e-2), steps=2000,
        key=key_train, batch_size=64, project=network.clip_weights,
        checkpoint="mlp.npz", checkpoint_every=500, resume=True,
    )
    logits = network(result.params, x_test, key=jax.random.key(1), read_time=86400.0)  # one day after programming
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..crossbar.layers import ACTIVATIONS
from ..variability.store import _atomic_file
from .analog import (
    AnalogConv2D, AnalogDense, AnalogNetwork, LogUniformReadTime, _check_size, analog_matmul, as_arrays,
    with_straight_through,
)

__all__ = [
    "ACTIVATIONS", "AnalogConv2D", "AnalogDense", "AnalogNetwork", "LogUniformReadTime", "TrainResult",
    "analog_matmul", "as_arrays", "train", "with_straight_through",
]

logger = logging.getLogger(__name__)

# Version of the checkpoint layout that `train` writes. `train` rejects a file of another version.
_CHECKPOINT_VERSION = 1


# Training loop.


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """The outcome of `train`.

    Attributes:
        params: parameters after the last step.
        opt_state: optimizer state after the last step.
        losses: loss of every step from step 0, float32, shape (steps,), including steps run before a resume.
    """

    params: Any
    opt_state: Any
    losses: np.ndarray


def train(
    loss_fn: Callable,
    params,
    data,
    *,
    optimizer,
    steps: int,
    key: jax.Array,
    batch_size: int | None = None,
    project: Callable | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
    progress_every: int | None = None,
) -> TrainResult:
    """Minimize `loss_fn` over `params` with an optax optimizer, one jitted step at a time.

    Step s (from 0) takes minibatch s of `data`, evaluates `loss_fn(params, batch, noise_key)` and its
    gradient, applies the optimizer's update and then `project`. Minibatches go through `data` in a new
    random order every epoch, each example once per epoch (the last examples that do not fill a
    minibatch are left out of that epoch). The order of epoch e and the noise key of step s are derived
    from `key` with `fold_in(e)` and `fold_in(s)`, so the run depends only on `key`, and a resumed run
    equals an uninterrupted one bit for bit.

    Args:
        loss_fn: loss_fn(params, batch, key) -> scalar loss, where `key` is the step's noise key (for
            example for `AnalogNetwork.__call__`). `jax.jit` traces it, so it must be a pure function.
        params: initial parameters, a pytree of arrays. On resume, it fixes the expected structure.
        data: a pytree of arrays with a shared leading axis of examples, for example (x, y).
        optimizer: an optax GradientTransformation (anything with `init` and `update`).
        steps: total number of steps, counted from 0 even on resume.
        key: PRNG key of the minibatch order and of the noise.
        batch_size: examples per step; None uses all examples in their stored order every step.
        project: function applied to the parameters after each update, for example
            `AnalogNetwork.clip_weights`; None for no projection.
        checkpoint: path of the checkpoint file (.npz), or None. Each write goes to a temporary file in
            the same folder, which then replaces the checkpoint, so a killed run leaves the previous one.
        checkpoint_every: write the checkpoint after every this many steps (and after the last step);
            None writes it after the last step only. Needs `checkpoint`.
        resume: continue from `checkpoint` when it exists, or start from step 0 when it does not. The
            checkpoint must come from a run with the same key, data size, batch size and parameter
            structure.
        overwrite: without `resume`, replace an existing `checkpoint` file. When False (the default), an
            existing file raises ValueError, so that a finished run's checkpoint is never lost by mistake.
        progress: called as progress(step, steps, loss) after every `progress_every` steps and after the
            last, with the number of steps done and the loss of the last step.
        progress_every: steps between progress calls (default: 1 % of `steps`, at least 1).

    Returns:
        The final parameters, optimizer state and the loss of every step.
    """
    _check_train_arguments(loss_fn, optimizer, project, progress)
    steps = _check_size("steps", steps)
    key = _typed_key(key)
    data = jax.tree_util.tree_map(jnp.asarray, data)
    examples = _count_examples(data)
    batch_size = examples if batch_size is None else _check_size("batch_size", batch_size)
    if batch_size > examples:
        raise ValueError(f"batch_size {batch_size} exceeds the {examples} examples in data; pass at most {examples}")
    checkpoint_every = _check_checkpoint_arguments(checkpoint, checkpoint_every, resume)
    if checkpoint is not None and not resume and not overwrite and Path(checkpoint).exists():
        raise ValueError(
            f"checkpoint {checkpoint} already exists; pass resume=True to continue that run, overwrite=True to "
            "replace it, or another checkpoint path"
        )
    progress_every = max(1, steps // 100) if progress_every is None else _check_size("progress_every", progress_every)
    identity = {"examples": examples, "batch_size": batch_size, "key": key}
    path = None if checkpoint is None else Path(checkpoint)

    params, opt_state, start, losses = _initial_state(params, optimizer, path if resume else None, identity, steps)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)

    step_function = _make_step(loss_fn, optimizer, project, batch_size, examples)
    step_keys = jax.random.split(key)
    pending = []  # losses still on the device, fetched at the next checkpoint or progress call
    warned = False
    logger.info("training for steps %d to %d, batch size %d of %d examples", start, steps, batch_size, examples)
    for step in range(start, steps):
        params, opt_state, loss = step_function(params, opt_state, data, step_keys, jnp.asarray(step, jnp.int32))
        pending.append(loss)
        done = step + 1
        last = done == steps
        write = path is not None and (last or (checkpoint_every is not None and done % checkpoint_every == 0))
        report = progress is not None and (last or done % progress_every == 0)
        if not (write or report):
            continue

        fetched = [float(value) for value in jax.device_get(pending)]
        pending = []
        losses.extend(fetched)
        if not warned and not all(math.isfinite(value) for value in fetched):
            warned = True
            logger.warning("training loss is not finite by step %d; lower the learning rate or check the data", done)
        if write:
            _write_checkpoint(path, params, opt_state, done, losses, identity)
        if report:
            progress(done, steps, losses[-1])

    if pending:
        losses.extend(float(value) for value in jax.device_get(pending))
    if losses:
        logger.info("training finished at step %d with loss %.6g", steps, losses[-1])
    return TrainResult(params=params, opt_state=opt_state, losses=np.asarray(losses, np.float32))


def _check_train_arguments(loss_fn, optimizer, project, progress) -> None:
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a function loss_fn(params, batch, key), got {loss_fn!r}")
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise ValueError(f"optimizer must be an optax GradientTransformation such as optax.adam(1e-3), got {optimizer!r}")
    if project is not None and not callable(project):
        raise ValueError(f"project must be a function of the parameters or None, got {project!r}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a function progress(step, steps, loss) or None, got {progress!r}")


def _check_checkpoint_arguments(checkpoint, checkpoint_every, resume: bool) -> int | None:
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path: pass checkpoint=<file.npz>")
    if checkpoint_every is None:
        return None
    if checkpoint is None:
        raise ValueError("checkpoint_every needs a checkpoint path: pass checkpoint=<file.npz>")
    return _check_size("checkpoint_every", checkpoint_every)


def _initial_state(params, optimizer, resume_from: Path | None, identity: dict, steps: int):
    """Return (params, opt_state, first step, losses so far): fresh, or loaded from `resume_from` when it exists."""
    params = _canonical(params)
    opt_state = _canonical(optimizer.init(params))
    if resume_from is None:
        return params, opt_state, 0, []
    if not resume_from.exists():
        logger.info("no checkpoint at %s; training from step 0", resume_from)
        return params, opt_state, 0, []

    params, opt_state, start, losses = _load_checkpoint(resume_from, params, opt_state, identity)
    if start > steps:
        raise ValueError(
            f"checkpoint {resume_from} is at step {start}, beyond steps={steps}; "
            f"pass steps >= {start} or a new checkpoint"
        )
    logger.info("resuming training from %s at step %d of %d", resume_from, start, steps)
    return params, opt_state, start, losses


def _typed_key(key):
    """Return `key` as a typed PRNG key, accepting the raw uint32 keys of `jax.random.PRNGKey` too."""
    if not isinstance(key, jax.Array):
        raise ValueError(f"key must be a PRNG key from jax.random.key(seed), got {key!r}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise ValueError(f"key must be a PRNG key from jax.random.key(seed), got an array of {key.dtype} {key.shape}")


def _count_examples(data) -> int:
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("data contains no arrays; pass a pytree of arrays such as (x, y)")
    counts = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else 0 for leaf in leaves}
    if len(counts) != 1 or 0 in counts:
        shapes = [tuple(jnp.shape(leaf)) for leaf in leaves]
        raise ValueError(f"every array in data must have the same leading number of examples (>= 1), got shapes {shapes}")
    return counts.pop()


def _canonical(tree):
    """Return `tree` with every leaf a JAX array of fixed (not weak) dtype.

    A fresh run and a resumed run then call the jitted step with identical types, so they compile the same
    program.
    """
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.asarray(leaf).dtype), tree)


def _apply_updates(params, updates):
    # The sum keeps each parameter's dtype, as optax.apply_updates does (optax 0.2.8).
    return jax.tree_util.tree_map(lambda p, u: (p + u).astype(p.dtype), params, updates)


def _make_step(loss_fn, optimizer, project, batch_size: int, examples: int):
    batches_per_epoch = examples // batch_size

    def select_batch(data, key_order, step):
        if batch_size == examples:
            return data
        epoch, position = jnp.divmod(step, batches_per_epoch)
        order = jax.random.permutation(jax.random.fold_in(key_order, epoch), examples)
        indices = jax.lax.dynamic_slice_in_dim(order, position * batch_size, batch_size)
        return jax.tree_util.tree_map(lambda leaf: jnp.take(leaf, indices, axis=0), data)

    @jax.jit
    def step_function(params, opt_state, data, step_keys, step):
        key_order, key_noise = step_keys
        batch = select_batch(data, key_order, step)
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, jax.random.fold_in(key_noise, step))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = _apply_updates(params, updates)
        if project is not None:
            params = project(params)
        return params, opt_state, loss

    return step_function


# Checkpoints.


def _write_checkpoint(path: Path, params, opt_state, step: int, losses, identity: dict) -> None:
    arrays = {
        "version": np.asarray(_CHECKPOINT_VERSION),
        "step": np.asarray(step, np.int64),
        "losses": np.asarray(losses, np.float32),
        "examples": np.asarray(identity["examples"], np.int64),
        "batch_size": np.asarray(identity["batch_size"], np.int64),
        "key_data": np.asarray(jax.random.key_data(identity["key"])),
    }
    for prefix, tree in (("params", params), ("opt_state", opt_state)):
        for index, leaf in enumerate(jax.tree_util.tree_leaves(tree)):
            arrays[f"{prefix}_{index}"] = np.asarray(leaf)
    with _atomic_file(path) as stream:
        np.savez(stream, **arrays)
    logger.debug("wrote checkpoint %s at step %d", path, step)


def _load_checkpoint(path: Path, params, opt_state, identity: dict):
    """Return (params, opt_state, step, losses) from a checkpoint, checked against this run."""
    try:
        stored = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"checkpoint {path} could not be read ({error}); delete it, or start a new run with another checkpoint path"
        ) from error
    with stored:
        version = int(stored["version"]) if "version" in stored else None
        if version != _CHECKPOINT_VERSION:
            raise ValueError(
                f"checkpoint {path} has layout version {version}, expected {_CHECKPOINT_VERSION}; "
                "delete it, or start a new run with another checkpoint path"
            )
        if not np.array_equal(stored["key_data"], np.asarray(jax.random.key_data(identity["key"]))):
            raise ValueError(
                f"checkpoint {path} was written by a run with another key; pass the same key, or start a new run "
                "with another checkpoint path"
            )
        for name in ("examples", "batch_size"):
            if int(stored[name]) != identity[name]:
                raise ValueError(
                    f"checkpoint {path} was written with {name}={int(stored[name])} but this run has "
                    f"{name}={identity[name]}; pass the same data and batch size, or start a new run with another "
                    "checkpoint path"
                )
        params = _restore(stored, "params", params, path)
        opt_state = _restore(stored, "opt_state", opt_state, path)
        return params, opt_state, int(stored["step"]), [float(value) for value in stored["losses"]]


def _restore(stored, prefix: str, template, path: Path):
    leaves, structure = jax.tree_util.tree_flatten(template)
    names = [name for name in stored.files if name.startswith(prefix + "_")]
    names.sort(key=lambda name: int(name.rsplit("_", 1)[1]))
    if len(names) != len(leaves):
        raise ValueError(
            f"checkpoint {path} contains {len(names)} {prefix} arrays but this run has {len(leaves)}; "
            "use the same model and optimizer as the run that wrote it, or another checkpoint path for a new run"
        )
    restored = []
    for index, (name, leaf) in enumerate(zip(names, leaves)):
        value = stored[name]
        if value.shape != leaf.shape or value.dtype != leaf.dtype:
            raise ValueError(
                f"checkpoint {path}: {prefix} array {index} is {value.dtype} {value.shape} but this run expects "
                f"{leaf.dtype} {leaf.shape}; use the same model and optimizer, or another checkpoint path for a new run"
            )
        restored.append(jnp.asarray(value, leaf.dtype))
    return structure.unflatten(restored)

