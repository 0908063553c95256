"""arcface_torch's networks as TorchScript graphs without their weights, and the weights put back.

The fixture scripts trace arcface_torch's own modules (torch.jit.trace records the ops they run,
the autocast casts included) and save the graph with every state entry replaced by a stride-0
view of one zero: a few hundred KB instead of the weights. The live references load such a graph,
assign real tensors by state-dict name and run it with the PyTorch of the machine the tests run on.
"""
import torch


def _owner(module, name):
    *path, leaf = name.split('.')
    for part in path:
        module = getattr(module, part)
    return module, leaf


def strip_weights(traced):
    """Every parameter and buffer becomes zeros((), dtype).expand(shape): same names, shapes, dtypes."""
    for name, value in list(traced.state_dict().items()):
        owner, leaf = _owner(traced, name)
        empty = torch.zeros((), dtype=value.dtype).expand(value.shape)
        is_parameter = isinstance(getattr(owner, leaf), torch.nn.Parameter)
        setattr(owner, leaf, torch.nn.Parameter(empty, requires_grad=False) if is_parameter else empty)
    return traced


def load_weights(traced, state, requires_grad=False):
    """Assigns copies of state's tensors by name; parameters get requires_grad (for backward)."""
    names = list(traced.state_dict().keys())
    if names != list(state.keys()):
        raise ValueError(f'state names differ from the graph\'s: {sorted(set(names) ^ set(state.keys()))[:5]}')
    for name, value in state.items():
        owner, leaf = _owner(traced, name)
        copy = value.detach().clone()
        setattr(owner, leaf, torch.nn.Parameter(copy, requires_grad=False) if isinstance(getattr(owner, leaf), torch.nn.Parameter) else copy)
    # a script module stores what setattr gives it without requires_grad: set it on the stored tensor
    for parameter in traced.parameters():
        parameter.requires_grad_(requires_grad and parameter.is_floating_point())
    return traced


def trace_without_weights(module, example, path):
    """Traces module on example (its current train/eval mode), checks the stripped graph reloads, saves it."""
    traced = torch.jit.trace(module, (example,), check_trace=False)
    torch.jit.save(strip_weights(traced), path)
