"""Import of NIR graphs: affine maps onto crossbar cores, spiking neurons onto CMOS LIF neurons.

NIR, the Neuromorphic Intermediate Representation (the `nir` Python package, read here as of version 1.0.8),
describes a spiking network as a graph of nodes with continuous-time equations. `from_nir` maps each node:

- `Affine` (y = W x + b) and `Linear` (y = W x): W is stored on a crossbar `Core` as W.T (inputs x outputs),
  and the bias is added in digital (`xbar.crossbar.Dense`).
- `Conv2d`: the kernel is stored on a core and runs as im2col (`xbar.crossbar.Conv2D`). Groups must be 1.
- `LIF` and `CubaLIF`: CMOS neurons, `xbar.learning.LIF` with current-based synapses (see below).
- `Scale`, `Flatten`, `SumPool2d` and `AvgPool2d`: digital operations.
- `Input` and `Output`: the graph's ports.

Other node types raise ValueError.

Time: the network runs on a fixed grid of step dt. The signal on each edge is one value per step, and a
spike is 1 in the step in which it occurs, as in the NIR importers of Norse and Lava. A node with
several incoming edges receives their sum. Within one step a signal crosses every node of a feed-forward
path, so there is no delay from input to output. An edge that closes a cycle (recurrence) carries the
value of the previous step, and it is 0 in the first step.

Neurons integrate with forward Euler, the scheme of those importers:

- NIR LIF, tau dv/dt = (v_leak - v) + r I, becomes v[n+1] = v[n] + dt/tau (v_leak - v[n] + r I[n]). It maps
  onto `LIF(tau_m=tau, v_rest=v_leak, synapse="current", method="euler", tau_syn=dt)` with the synaptic
  increment r I[n]. With tau_syn = dt the Euler synapse decays to exactly 0 in one step, so the increment
  acts in its own step only, as NIR's equation has no synaptic current.
- NIR CubaLIF, tau_syn dI/dt = -I + w_in S and tau_mem dv/dt = (v_leak - v) + r I, becomes
  I[n+1] = I[n] + dt/tau_syn (w_in S[n] - I[n]), then v[n+1] = v[n] + dt/tau_mem (v_leak - v[n] + r I[n+1]).
  It maps onto `LIF(tau_m=tau_mem, tau_syn=tau_syn, synapse="current", method="euler")`, whose synaptic
  variable is r I (in V), with the increment r w_in dt/tau_syn S[n].
- Both spike where v > v_threshold at the end of the step and reset v to v_reset (0 when the node gives
  none), with no refractory period and no adaptive threshold.

Units: NIR does not fix units. Time constants and dt are taken as seconds, potentials as volts (the units of
`LIF`), and r as the factor that turns the input signal into a potential. Graphs exported with
dimensionless potentials (thresholds near 1) import unchanged, because `LIF` accepts any finite potential.
Forward Euler needs dt at most equal to every time constant, so a larger dt raises ValueError.

NOTE: NIR leaves the discretization open. A graph written for spikes as Dirac pulses of area 1 (each
spike raises v by r w / tau) drives these neurons dt times more weakly (dt/tau r w per spike), so divide
its r by dt before importing it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_finite, check_positive
from ..crossbar import Core
from ..crossbar.layers import Conv2D, Dense, LayerRead, LayerState
from .neurons import LIF, LIFState

__all__ = ["NIRNetwork", "NIRState", "SUPPORTED_NIR_NODES", "from_nir"]

SUPPORTED_NIR_NODES = (
    "Affine", "AvgPool2d", "Conv2d", "CubaLIF", "Flatten", "Input", "LIF", "Linear", "Output", "Scale", "SumPool2d",
)


class _Node(eqx.Module):
    """One imported node. `apply` maps the summed input of a step to the node's output of that step."""

    shape: tuple[int, ...] = eqx.field(static=True)

    def init(self):
        return None

    def apply(self, read, state, x, dt, *, key):
        del read, dt, key
        return state, x


class _Port(_Node):
    """An Input or Output node: passes its signal on."""


class _Crossbar(_Node):
    """An Affine or Linear node: W x + b with W.T on a core and b in digital."""

    layer: Dense
    weights: jax.Array  # inputs x outputs
    bias: jax.Array | None

    def program(self, *, key):
        return self.layer.program(self.weights, self.bias, key=key)

    def read(self, state, t, *, key):
        return self.layer.read(state, t, key=key)

    def apply(self, read, state, x, dt, *, key):
        del dt
        return state, self.layer(read, x, key=key)


class _Convolution(_Node):
    """A Conv2d node on a core. NIR images are channels-first (C, H, W), and `Conv2D` works channels-last."""

    layer: Conv2D
    kernel: jax.Array  # (kh, kw, C_in, C_out)
    bias: jax.Array

    def program(self, *, key):
        return self.layer.program(self.kernel, self.bias, key=key)

    def read(self, state, t, *, key):
        return self.layer.read(state, t, key=key)

    def apply(self, read, state, x, dt, *, key):
        del dt
        y = self.layer(read, jnp.moveaxis(x, -3, -1), key=key)
        return state, jnp.moveaxis(y, -1, -3)


class _Neurons(_Node):
    """A LIF or CubaLIF node: a population of `LIF` neurons, one per element of `shape`."""

    neurons: LIF
    gain: jax.Array  # synaptic increment per unit of input, per neuron

    def init(self):
        return self.neurons.init(math.prod(self.shape))

    def apply(self, read, state, x, dt, *, key):
        del read, key
        increment = self.gain * jnp.reshape(x, (-1,))
        state, spikes = self.neurons.step(state, increment, dt)
        return state, jnp.reshape(spikes.astype(increment.dtype), self.shape)


class _Scale(_Node):
    """A Scale node: elementwise product in digital."""

    scale: jax.Array

    def apply(self, read, state, x, dt, *, key):
        del read, dt, key
        return state, x * self.scale


class _Reshape(_Node):
    """A Flatten node: a reshape in digital to `shape`."""

    def apply(self, read, state, x, dt, *, key):
        del read, dt, key
        return state, jnp.reshape(x, self.shape)


class _Pool(_Node):
    """A SumPool2d or AvgPool2d node on channels-first images, in digital."""

    kernel_size: tuple[int, int] = eqx.field(static=True)
    stride: tuple[int, int] = eqx.field(static=True)
    padding: tuple[int, int] = eqx.field(static=True)
    average: bool = eqx.field(static=True)

    def apply(self, read, state, x, dt, *, key):
        del read, dt, key
        pads = ((0, 0), (self.padding[0], self.padding[0]), (self.padding[1], self.padding[1]))
        y = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, *self.kernel_size), (1, *self.stride), pads)
        if self.average:
            # Padded zeros count, as in PyTorch's AvgPool2d default (count_include_pad=True).
            y = y / (self.kernel_size[0] * self.kernel_size[1])
        return state, y


class NIRState(eqx.Module):
    """State of an imported network between runs.

    Attributes:
        neurons: the state of each neuron node, by node name.
        feedback: the last output of each node that feeds a recurrent edge, by node name.
    """

    neurons: dict[str, LIFState]
    feedback: dict[str, jax.Array]


class NIRNetwork(eqx.Module):
    """A NIR graph mapped onto crossbar cores and CMOS LIF neurons (built by `from_nir`).

    A simulation takes the three steps of a core: `program` stores every crossbar node's weights, `read`
    reads them at a time t after programming, and `run` steps the network over an input raster with one
    `jax.lax.scan`. `simulate` does all three. Under `jax.vmap` over keys or input rasters, independent
    chips or samples run together.

    Attributes:
        nodes: the imported nodes, by NIR node name.
        order: node names in the order in which a step evaluates them (static).
        current_sources: for each node in `order`, the nodes whose output of the same step it receives (static).
        previous_sources: for each node in `order`, the nodes whose output of the previous step it receives,
            over recurrent edges (static).
        input_names, output_names: names of the Input and Output nodes (static).
        dt: time step, s.
    """

    nodes: dict[str, _Node]
    order: tuple[str, ...] = eqx.field(static=True)
    current_sources: tuple[tuple[str, ...], ...] = eqx.field(static=True)
    previous_sources: tuple[tuple[str, ...], ...] = eqx.field(static=True)
    input_names: tuple[str, ...] = eqx.field(static=True)
    output_names: tuple[str, ...] = eqx.field(static=True)
    dt: float

    @property
    def crossbar_nodes(self) -> tuple[str, ...]:
        """Names of the nodes whose weights are stored on crossbar cores, in evaluation order."""
        return tuple(name for name in self.order if isinstance(self.nodes[name], (_Crossbar, _Convolution)))

    def program(self, *, key: jax.Array) -> dict[str, LayerState]:
        """Program the weights of every crossbar node, each with its own key derived from `key`."""
        names = self.crossbar_nodes
        keys = jax.random.split(key, max(len(names), 1))
        return {name: self.nodes[name].program(key=k) for name, k in zip(names, keys)}

    def read(self, states: Mapping[str, LayerState], t, *, key: jax.Array) -> dict[str, LayerRead]:
        """Read every crossbar node at time t (s) after programming."""
        names = self.crossbar_nodes
        missing = [name for name in names if name not in states]
        if missing:
            raise ValueError(f"no programmed state for the crossbar nodes {missing}; pass the result of program")
        keys = jax.random.split(key, max(len(names), 1))
        return {name: self.nodes[name].read(states[name], t, key=k) for name, k in zip(names, keys)}

    def init_state(self) -> NIRState:
        """Return the state at rest: every neuron at v_leak with no synaptic current, no feedback signal."""
        neurons = {name: node.init() for name, node in self.nodes.items() if isinstance(node, _Neurons)}
        dtype = jnp.result_type(float)
        feedback = {
            name: jnp.zeros(self.nodes[name].shape, dtype)
            for name in sorted({source for sources in self.previous_sources for source in sources})
        }
        return NIRState(neurons=neurons, feedback=feedback)

    def run(self, reads: Mapping[str, LayerRead], inputs, *, key: jax.Array, state: NIRState | None = None):
        """Step the network over an input raster and return the output rasters and the final state.

        Args:
            reads: the crossbar reads from `read`.
            inputs: the signal of the Input node over time, shape (steps, *input shape), or a mapping from
                Input node name to such arrays when the graph has several. Spikes are 1 (or True) in their step.
            key: PRNG key for the product noise of the cores, a fresh one per step and node.
            state: the state to start from (default: at rest, `init_state`).

        Returns:
            (outputs, state): `outputs` maps each Output node name to its signal, shape (steps, *shape).
        """
        rasters, steps = self._input_rasters(inputs)
        missing = [name for name in self.crossbar_nodes if name not in reads]
        if missing:
            raise ValueError(f"no read for the crossbar nodes {missing}; pass the result of read")
        if state is None:
            state = self.init_state()
        dt = self.dt

        def body(carry, step_inputs):
            neurons, feedback = carry
            signals, step = step_inputs
            step_key = jax.random.fold_in(key, step)
            values = {}
            neurons = dict(neurons)
            for index, name in enumerate(self.order):
                if name in signals:
                    x = signals[name]
                else:
                    x = sum(values[source] for source in self.current_sources[index])
                    for source in self.previous_sources[index]:
                        x = x + feedback[source]
                node = self.nodes[name]
                new_state, values[name] = node.apply(
                    reads.get(name), neurons.get(name), x, dt, key=jax.random.fold_in(step_key, index)
                )
                if name in neurons:
                    neurons[name] = new_state
            feedback = {name: values[name] for name in feedback}
            return (neurons, feedback), {name: values[name] for name in self.output_names}

        carry = (state.neurons, state.feedback)
        (neurons, feedback), outputs = jax.lax.scan(body, carry, (rasters, jnp.arange(steps)))
        return outputs, NIRState(neurons=neurons, feedback=feedback)

    def simulate(self, inputs, *, key: jax.Array, t=0.0):
        """Program the cores, read them at time t (s) and run the inputs from rest; return the output rasters."""
        key_program, key_read, key_run = jax.random.split(key, 3)
        reads = self.read(self.program(key=key_program), t, key=key_read)
        outputs, _ = self.run(reads, inputs, key=key_run)
        return outputs

    def _input_rasters(self, inputs):
        """Return the inputs as a dict by Input node name, cast to float, and the number of steps."""
        if isinstance(inputs, Mapping):
            rasters = dict(inputs)
        elif len(self.input_names) == 1:
            rasters = {self.input_names[0]: inputs}
        else:
            raise ValueError(
                f"the graph has {len(self.input_names)} Input nodes {list(self.input_names)}; pass the inputs "
                "as a mapping from Input node name to raster"
            )
        if set(rasters) != set(self.input_names):
            raise ValueError(
                f"inputs are given for {sorted(rasters)} but the Input nodes are {sorted(self.input_names)}"
            )
        dtype = jnp.result_type(float)
        steps = None
        for name in self.input_names:
            raster = jnp.asarray(rasters[name]).astype(dtype)
            shape = self.nodes[name].shape
            if raster.ndim < 1 or tuple(raster.shape[1:]) != shape:
                raise ValueError(
                    f"input {name!r} must have shape (steps, {', '.join(map(str, shape))}), got {raster.shape}"
                )
            if steps is not None and raster.shape[0] != steps:
                raise ValueError(f"all inputs must have the same number of steps, got {steps} and {raster.shape[0]}")
            steps = raster.shape[0]
            check_finite(f"input {name!r}", raster)
            rasters[name] = raster
        if steps == 0:
            raise ValueError("the inputs have 0 steps; pass at least one step")
        return rasters, steps


def from_nir(graph, *, core: Core = Core(), cores: Mapping[str, Core] | None = None,
             dt: float | None = None) -> NIRNetwork:
    """Build an xbar network from a NIR graph (a `nir.NIRGraph` or the path of a .nir file).

    Args:
        graph: the graph, or a path that `nir.read` loads.
        core: the crossbar core of every Affine, Linear and Conv2d node (default: ideal 256 x 256 tiles).
        cores: cores for single nodes, by node name, in place of `core`.
        dt: time step, s. None takes `graph.metadata["dt"]`, and raises ValueError when the graph has none.

    Raises:
        ValueError: for node types outside `SUPPORTED_NIR_NODES`, nested graphs, shapes that do not match,
            nodes that no Input node reaches, or a dt above a neuron's time constant.
        ImportError: when the `nir` package is missing.
    """
    try:
        import nir
    except ImportError as error:
        raise ImportError('NIR import needs the nir package: pip install "xbar-sim[nir]"') from error

    if isinstance(graph, (str, os.PathLike)):
        graph = nir.read(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"graph must be a nir.NIRGraph or the path of a .nir file, got {type(graph).__name__}")
    if not isinstance(core, Core):
        raise ValueError(f"core must be a Core instance, got {core!r}")
    cores = dict(cores or {})
    for name, node_core in cores.items():
        if name not in graph.nodes:
            raise ValueError(f"cores names the node {name!r}, which is not in the graph; nodes: {sorted(graph.nodes)}")
        if not isinstance(node_core, Core):
            raise ValueError(f"cores[{name!r}] must be a Core instance, got {node_core!r}")
    if dt is None:
        metadata = graph.metadata if isinstance(graph.metadata, dict) else {}
        if "dt" not in metadata:
            raise ValueError("the graph's metadata has no time step dt; pass dt=<step in s> to from_nir")
        dt = float(np.asarray(metadata["dt"]))
    check_positive("dt", dt, "s")

    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if isinstance(node, nir.NIRGraph):
            raise ValueError(f"node {name!r} is a nested NIR graph, which is not supported; flatten it into one graph")
        if kind not in SUPPORTED_NIR_NODES:
            raise ValueError(
                f"node {name!r} has the unsupported NIR type {kind}; supported types: {', '.join(SUPPORTED_NIR_NODES)}"
            )

    input_names = tuple(name for name, node in graph.nodes.items() if isinstance(node, nir.Input))
    output_names = tuple(name for name, node in graph.nodes.items() if isinstance(node, nir.Output))
    if not input_names:
        raise ValueError("the graph has no Input node; add nir.Input nodes for the signals that drive it")
    if not output_names:
        raise ValueError("the graph has no Output node; add nir.Output nodes for the signals to record")

    order, current, previous = _evaluation_order(graph, input_names)
    shapes: dict[str, tuple[int, ...]] = {}
    nodes: dict[str, _Node] = {}
    for index, name in enumerate(order):
        node = graph.nodes[name]
        if isinstance(node, nir.Input):
            if current[index] or previous[index]:
                raise ValueError(
                    f"Input node {name!r} has incoming edges; an Input node takes only the external signal"
                )
            shape = _shape(node.input_type.get("input"), name)
        else:
            source_shapes = {shapes[source] for source in current[index]}
            if len(source_shapes) != 1:
                raise ValueError(
                    f"node {name!r} receives signals of different shapes {sorted(source_shapes)}; the signals "
                    "into one node are summed and must have one shape"
                )
            shape = source_shapes.pop()
        nodes[name] = _convert(nir, name, node, shape, cores.get(name, core), dt)
        shapes[name] = nodes[name].shape

    for index, name in enumerate(order):
        for source in previous[index]:
            if shapes[source] != _input_shape(nodes[name], shapes, current[index]):
                raise ValueError(
                    f"the recurrent edge ({source!r}, {name!r}) carries shape {shapes[source]} but {name!r} receives "
                    f"shape {_input_shape(nodes[name], shapes, current[index])}"
                )

    return NIRNetwork(
        nodes=nodes, order=order, current_sources=current, previous_sources=previous, input_names=input_names,
        output_names=output_names, dt=dt,
    )


def _input_shape(node: _Node, shapes, sources) -> tuple[int, ...]:
    return shapes[sources[0]] if sources else node.shape


def _evaluation_order(graph, input_names):
    """Return the step order of the nodes and, for each, its same-step and previous-step sources.

    The order is the reverse postorder of a depth-first search from the Input nodes, a topological order
    when the graph has no cycle. An edge into a node that comes earlier in the order (or into itself)
    closes a cycle, and it carries the previous step's value.
    """
    successors: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for source, target in graph.edges:
        successors[source].append(target)

    visited: set[str] = set()
    postorder: list[str] = []
    for start in input_names:
        if start in visited:
            continue
        visited.add(start)
        stack = [(start, iter(successors[start]))]
        # An explicit stack rather than recursion, so that long chains do not reach Python's recursion limit.
        while stack:
            name, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                postorder.append(name)
            elif child not in visited:
                visited.add(child)
                stack.append((child, iter(successors[child])))

    unreachable = sorted(set(graph.nodes) - visited)
    if unreachable:
        raise ValueError(f"no Input node reaches the nodes {unreachable}; connect them or remove them from the graph")
    order = tuple(reversed(postorder))
    position = {name: index for index, name in enumerate(order)}
    current: list[list[str]] = [[] for _ in order]
    previous: list[list[str]] = [[] for _ in order]
    for source, target in graph.edges:
        if position[source] < position[target]:
            current[position[target]].append(source)
        else:
            previous[position[target]].append(source)
    return order, tuple(map(tuple, current)), tuple(map(tuple, previous))


def _shape(value, name: str) -> tuple[int, ...]:
    if value is None:
        raise ValueError(f"node {name!r} has no defined shape; set its input_type in the NIR graph")
    return tuple(int(n) for n in np.atleast_1d(np.asarray(value)))


def _array(value, dtype=None):
    return jnp.asarray(np.asarray(value), dtype or jnp.result_type(float))


def _convert(nir, name: str, node, shape: tuple[int, ...], core: Core, dt: float) -> _Node:
    """Return the imported node for a NIR node that receives signals of `shape`."""
    if isinstance(node, (nir.Input, nir.Output)):
        return _Port(shape=shape)
    if isinstance(node, (nir.Affine, nir.Linear)):
        return _convert_affine(nir, name, node, shape, core)
    if isinstance(node, nir.Conv2d):
        return _convert_convolution(name, node, shape, core)
    if isinstance(node, (nir.LIF, nir.CubaLIF)):
        return _convert_neurons(nir, name, node, shape, dt)
    if isinstance(node, nir.Scale):
        scale = _array(node.scale)
        if jnp.broadcast_shapes(scale.shape, shape) != shape:
            raise ValueError(
                f"Scale node {name!r} has scale of shape {scale.shape}, which does not broadcast to its input {shape}"
            )
        return _Scale(shape=shape, scale=scale)
    if isinstance(node, nir.Flatten):
        return _convert_flatten(nir, name, node, shape)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        return _convert_pool(nir, name, node, shape)
    raise ValueError(f"node {name!r} has the unsupported NIR type {type(node).__name__}")


def _convert_affine(nir, name, node, shape, core):
    weight = _array(node.weight)
    if weight.ndim != 2:
        raise ValueError(f"{type(node).__name__} node {name!r} has a weight of shape {weight.shape}; only 2-D weights "
                         "(outputs x inputs) are supported")
    check_finite(f"weight of node {name!r}", weight)
    if shape != (weight.shape[1],):
        raise ValueError(
            f"{type(node).__name__} node {name!r} takes inputs of shape ({weight.shape[1]},) but receives shape "
            f"{shape}; add a Flatten node before it"
        )
    bias = None
    if isinstance(node, nir.Affine):
        bias = jnp.broadcast_to(_array(node.bias), (weight.shape[0],))
    return _Crossbar(shape=(weight.shape[0],), layer=Dense(core=core), weights=weight.T, bias=bias)


def _convert_convolution(name, node, shape, core):
    weight = _array(node.weight)  # (C_out, C_in, kh, kw)
    if weight.ndim != 4:
        raise ValueError(f"Conv2d node {name!r} has a weight of shape {weight.shape}; expected (C_out, C_in, kh, kw)")
    if int(node.groups) != 1:
        raise ValueError(f"Conv2d node {name!r} has groups={node.groups}; only groups=1 is supported")
    if len(shape) != 3 or shape[0] != weight.shape[1]:
        raise ValueError(f"Conv2d node {name!r} takes (C_in={weight.shape[1]}, H, W) inputs but receives shape {shape}")
    padding = node.padding
    if not isinstance(padding, str):
        padding = tuple(int(n) for n in np.broadcast_to(np.asarray(padding), (2,)))
    layer = Conv2D(
        core=core, kernel_size=tuple(int(n) for n in weight.shape[2:]),
        stride=tuple(int(n) for n in np.broadcast_to(np.asarray(node.stride), (2,))),
        padding=padding, dilation=tuple(int(n) for n in np.broadcast_to(np.asarray(node.dilation), (2,))),
    )
    bias = jnp.broadcast_to(_array(node.bias), (weight.shape[0],))
    kernel = jnp.transpose(weight, (2, 3, 1, 0))
    # The output shape follows from running the layer's patch extraction on a dummy image.
    height, width = jax.eval_shape(layer.patches, jax.ShapeDtypeStruct((*shape[1:], shape[0]), jnp.float32)).shape[:2]
    return _Convolution(shape=(weight.shape[0], height, width), layer=layer, kernel=kernel, bias=bias)


def _convert_neurons(nir, name, node, shape, dt):
    kind = type(node).__name__
    if isinstance(node, nir.LIF):
        tau_m, tau_syn = node.tau, None
    else:
        tau_m, tau_syn = node.tau_mem, node.tau_syn
    parameters = {"tau": tau_m, "r": node.r, "v_leak": node.v_leak, "v_threshold": node.v_threshold,
                  "v_reset": node.v_reset if node.v_reset is not None else np.zeros_like(node.v_threshold)}
    if tau_syn is not None:
        parameters["tau_syn"] = tau_syn
        parameters["w_in"] = node.w_in
    flat = {}
    for parameter, value in parameters.items():
        array = np.asarray(value, np.float64)
        if array.shape not in ((), shape):
            raise ValueError(
                f"{kind} node {name!r} has {parameter} of shape {array.shape} but receives inputs of shape {shape}"
            )
        flat[parameter] = np.broadcast_to(array, shape).reshape(-1)
        if not np.all(np.isfinite(flat[parameter])):
            raise ValueError(f"{kind} node {name!r} has non-finite values in {parameter}; pass finite parameters")

    for parameter in ("tau", "tau_syn"):
        if parameter in flat and np.any(flat[parameter] < dt):
            raise ValueError(
                f"{kind} node {name!r} has {parameter} down to {flat[parameter].min()} s, below the time step "
                f"dt = {dt} s; forward Euler needs dt <= every time constant, so pass a smaller dt"
            )
    dtype = jnp.result_type(float)

    def field(parameter):
        return jnp.asarray(flat[parameter], dtype)

    if tau_syn is None:
        gain = field("r")
        tau_syn_value = dt
    else:
        gain = field("r") * field("w_in") * dt / field("tau_syn")
        tau_syn_value = field("tau_syn")
    try:
        neurons = LIF(
            tau_m=field("tau"), v_rest=field("v_leak"), v_reset=field("v_reset"), v_threshold=field("v_threshold"),
            refractory=0.0, tau_syn=tau_syn_value, synapse="current", method="euler",
        )
    except ValueError as error:
        raise ValueError(f"{kind} node {name!r}: {error}") from error
    return _Neurons(shape=shape, neurons=neurons, gain=gain)


def _convert_flatten(nir, name, node, shape):
    declared = (node.output_type or {}).get("output")
    if declared is not None:
        output = _shape(declared, name)
    else:
        from nir.ir.utils import calc_flatten_output

        output = _shape(calc_flatten_output(list(shape), node.start_dim, node.end_dim), name)
    if math.prod(output) != math.prod(shape):
        raise ValueError(
            f"Flatten node {name!r} turns shape {shape} into {output}, which has another number of elements"
        )
    return _Reshape(shape=output)


def _convert_pool(nir, name, node, shape):
    if len(shape) != 3:
        raise ValueError(f"{type(node).__name__} node {name!r} takes (C, H, W) inputs but receives shape {shape}")

    def pair(value):
        return tuple(int(n) for n in np.broadcast_to(np.asarray(value), (2,)))

    kernel, stride, padding = pair(node.kernel_size), pair(node.stride), pair(node.padding)
    height, width = (
        (shape[1 + axis] + 2 * padding[axis] - kernel[axis]) // stride[axis] + 1 for axis in range(2)
    )
    return _Pool(shape=(shape[0], height, width), kernel_size=kernel, stride=stride, padding=padding,
                 average=isinstance(node, nir.AvgPool2d))
