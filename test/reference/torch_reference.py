#!/usr/bin/python3
"""Live PyTorch references for the tests: `python3 torch_reference.py CASE` prints one JSON object,
{"torch_version": ..., "result": ...}.

The tests call this (test/torch-reference.ts) instead of reading recorded numbers wherever the
result depends on floating-point order (training-mode BatchNorm, gradients, oneDNN/OpenBLAS kernel
choice), because PyTorch's own float32 results differ between the CPU kinds that run the tests
(AMD EPYC, Intel Sapphire Rapids). One thread, as the tests run their side.

Cases:
  nn_chain   a conv → BN2d → PReLU → linear → BN1d net (seed 0): names, initial state, one training
             forward/backward, the state after it, an eval forward
  backbones  arcface_torch's r18 and mbf (graphs in test/fixtures/traced/) with the deterministic
             weights of backbone_weights.py: eval and train embeddings, state checksums after the
             train pass; mbf with its body under bfloat16 autocast, and in float32, on 2 inputs
  vit        arcface_torch's scaled-down ViTs (test/fixtures/vit_small_*.pt): eval, a seeded train
             step with gradient checksums, state checksums after it, the bf16-autocast eval; vit_t
             with the deterministic weights
"""
import json
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, '..', 'fixtures')
sys.path.insert(0, FIXTURES)
from backbone_weights import deterministic_input, deterministic_state_dict  # noqa: E402
from traced_graph import load_weights  # noqa: E402


def floats(t):
    return t.detach().flatten().tolist()


def dump(t):
    t = t.detach()
    return {'shape': list(t.shape), 'dtype': str(t.dtype).replace('torch.', ''), 'data': t.flatten().tolist()}


def checksum(t):
    """[Σv, Σv², Σ v_i·cos(0.1 i)] in float64."""
    v = t.detach().double().flatten()
    w = torch.cos(0.1 * torch.arange(v.numel(), dtype=torch.float64))
    return [v.sum().item(), (v * v).sum().item(), (v * w).sum().item()]


def traced(name):
    return torch.jit.load(os.path.join(FIXTURES, 'traced', f'{name}.pt'))


class NnChain(nn.Module):
    # Nested names on purpose: features.0.weight, features.1.running_mean, fc.weight, bn.bias, ...
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.PReLU(4))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 6 * 6, 5)
        self.bn = nn.BatchNorm1d(5)

    def forward(self, x):
        return self.bn(self.fc(self.flatten(self.features(x))))


def nn_chain():
    torch.manual_seed(0)
    net = NnChain()
    init_state = {k: dump(v) for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 6, 6, generator=gen, requires_grad=True)
    loss_weight = torch.randn(4, 5, generator=gen)
    net.train()
    out = net(x)
    loss = (out * loss_weight).sum()
    loss.backward()
    grads = {name: dump(p.grad) for name, p in net.named_parameters()}
    net.eval()
    with torch.no_grad():
        eval_out = net(x)
    return {
        'state_dict_keys': list(net.state_dict().keys()),
        'parameter_names': [name for name, _ in net.named_parameters()],
        'buffer_names': [name for name, _ in net.named_buffers()],
        'init_state': init_state,
        'input': dump(x),
        'loss_weight': dump(loss_weight),
        'train_output': dump(out),
        'loss': loss.item(),
        'grads': grads,
        'input_grad': dump(x.grad),
        'state_after_train': {k: dump(v) for k, v in net.state_dict().items()},
        'eval_output': dump(eval_out),
    }


def bf16_prelu_slopes(traced):
    """The PReLU slopes of mbf's autocast body (layers.*) in bfloat16, as torch 2.x's CPU autocast hands
    them to prelu. The graph traced on 1.13 recorded prelu(bfloat16 input, float32 slope), which 2.x's
    prelu refuses ("Type promoting not supported"). With the slopes in bfloat16 the graph equals
    arcface_torch's mbf run live under CPU bfloat16 autocast bit for bit, on torch 1.13 and on 2.13."""
    for name, module in traced.named_modules():
        if module.original_name == 'PReLU' and name.startswith('layers.'):
            module.weight = nn.Parameter(module.weight.detach().bfloat16(), requires_grad=False)
    return traced


def backbones():
    out = {}
    x = deterministic_input(4)
    for name in ['r18', 'mbf']:
        evaluating, training = traced(f'{name}_eval'), traced(f'{name}_train')
        weights = deterministic_state_dict(evaluating.state_dict())
        with torch.no_grad():
            eval_out = load_weights(evaluating, weights)(x)
            training = load_weights(training, weights)
            train_out = training(x)
        out[name] = {
            'eval': floats(eval_out),
            'train': floats(train_out),
            'after_train_checksums': {k: checksum(v)[:2] for k, v in training.state_dict().items()},
        }
    bf16, fp32 = traced('mbf_bf16_eval'), traced('mbf_eval')
    weights = deterministic_state_dict(bf16.state_dict())
    with torch.no_grad():
        x = deterministic_input(2)
        out['mbf_bf16'] = {'eval': floats(bf16_prelu_slopes(load_weights(bf16, weights))(x)), 'float32_eval': floats(load_weights(fp32, weights)(x))}
    return out


def vit_small(key):
    """One scaled-down ViT: eval embedding; train step (seed 7, loss Σ out·sin(0.37 i + 0.2)) as the test runs it."""
    weights = torch.load(os.path.join(FIXTURES, f'vit_{key}.pt'))
    x = deterministic_input(4)
    with torch.no_grad():
        eval_out = load_weights(traced(f'vit_{key}_eval'), weights)(x)
    model = load_weights(traced(f'vit_{key}_train'), weights, requires_grad=True)
    torch.manual_seed(7)
    train_out = model(x)
    w = torch.from_numpy(np.sin(0.37 * np.arange(train_out.numel()) + 0.2).astype(np.float32)).reshape(train_out.shape)
    (train_out * w).sum().backward()
    return {
        'eval': floats(eval_out),
        'train': floats(train_out),
        'grad_checksums': {k: None if p.grad is None else checksum(p.grad) for k, p in model.named_parameters()},
        'after_train_checksums': {k: checksum(v) for k, v in model.state_dict().items()},
    }


def vit():
    out = {key: vit_small(key) for key in ['small_ln', 'small_bn']}
    with torch.no_grad():
        bf16 = load_weights(traced('vit_small_ln_bf16_eval'), torch.load(os.path.join(FIXTURES, 'vit_small_ln.pt')))
        out['small_ln_bf16'] = {'eval': floats(bf16(deterministic_input(2)))}
        vit_t = traced('vit_t_eval')
        # names prefixed 'model.' so that every name has a module part (backbone_weights.role)
        prefixed = deterministic_state_dict({'model.' + k: v for k, v in vit_t.state_dict().items()})
        weights = {k[len('model.'):]: v for k, v in prefixed.items()}
        out['vit_t'] = {'eval': floats(load_weights(vit_t, weights)(deterministic_input(2)))}
    return out


CASES = {'nn_chain': nn_chain, 'backbones': backbones, 'vit': vit}

if __name__ == '__main__':
    torch.set_num_threads(1)
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit(f'usage: torch_reference.py {{{"|".join(CASES)}}}')
    # the version travels with the numbers: the caller refuses a reference of another libtorch version
    json.dump({'torch_version': torch.__version__, 'result': CASES[sys.argv[1]]()}, sys.stdout, separators=(',', ':'))
