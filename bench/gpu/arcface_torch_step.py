"""arcface_torch's own training step, timed: the peer of `arcface bench train` / `arcface bench pfc`.

Runs insightface's arcface_torch modules (ARCFACE_TORCH: a folder with its backbones/, losses.py and
partial_fc_v2.py, commit 0159b24d) as train_v2.py runs them — backbone with fp16 autocast,
CombinedMarginLoss, PartialFC_V2, one SGD over both (momentum 0.9, weight decay 5e-4), GradScaler
(growth interval 100), clip_grad_norm_(backbone, 5), loss.item() every step — on synthetic data that
stays on the device, at world size 1 (NCCL on a GPU, Gloo on the CPU). Prints one JSON line.

  python3 arcface_torch_step.py train --network r50 --batch-size 128 --num-classes 93431 --sample-rate 1 --steps 30
  python3 arcface_torch_step.py pfc --num-classes 1000000 --sample-rate 0.1 --steps 20      (the head alone)
  --device cpu runs the same on the CPU (a dry run of this script; fp16 autocast is then off).
"""
import argparse
import json
import os
import sys
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument('what', choices=['train', 'pfc'])
parser.add_argument('--network', default='r50')
parser.add_argument('--batch-size', type=int, default=128)
parser.add_argument('--embedding-size', type=int, default=512)
parser.add_argument('--num-classes', type=int, default=93431)
parser.add_argument('--sample-rate', type=float, default=1.0)
parser.add_argument('--steps', type=int, default=20)
parser.add_argument('--warmup', type=int, default=5)
parser.add_argument('--device', default='cuda')
args = parser.parse_args()

sys.path.insert(0, os.environ.get('ARCFACE_TORCH', os.path.join(os.path.dirname(__file__), 'arcface_torch')))
from backbones import get_model  # noqa: E402  (arcface_torch's)
from losses import CombinedMarginLoss  # noqa: E402
from partial_fc_v2 import PartialFC_V2  # noqa: E402

cuda = args.device.startswith('cuda')
device = torch.device(args.device)
if not cuda:  # the dry run: its modules call .cuda() on what they make
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
os.environ.setdefault('MASTER_PORT', str(29500 + os.getpid() % 1000))
torch.distributed.init_process_group('nccl' if cuda else 'gloo', rank=0, world_size=1)
if cuda:
    torch.cuda.set_device(device)


def sync():
    if cuda:
        torch.cuda.synchronize(device)


torch.manual_seed(0)
# memory per class counts everything the run allocates from here: centres, their gradient, momentum
before = torch.cuda.memory_allocated(device) if cuda else 0
margin = CombinedMarginLoss(64, 1.0, 0.5, 0.0, 0)
head = PartialFC_V2(margin, args.embedding_size, args.num_classes, args.sample_rate, False).train().to(device)
params = [{'params': head.parameters()}]
backbone = None
if args.what == 'train':
    backbone = get_model(args.network, dropout=0.0, fp16=cuda, num_features=args.embedding_size).to(device).train()
    params.insert(0, {'params': backbone.parameters()})
opt = torch.optim.SGD(params=params, lr=0.1, momentum=0.9, weight_decay=5e-4)
scaler = torch.cuda.amp.GradScaler(growth_interval=100, enabled=cuda)

images = torch.randn(args.batch_size, 3, 112, 112, device=device).clamp_(-1, 1)
labels = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
features = torch.randn(args.batch_size, args.embedding_size, device=device)

times = []
for step in range(args.warmup + args.steps):
    sync()
    start = time.perf_counter()
    embeddings = backbone(images) if backbone is not None else features.clone().requires_grad_()
    loss = head(embeddings, labels)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    if backbone is not None:
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), 5)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad()
    loss.item()
    sync()
    if step >= args.warmup:
        times.append((time.perf_counter() - start) * 1000)

times.sort()
median = times[(len(times) - 1) // 2]
result = {
    'bench': 'arcface_torch_' + args.what, 'device': args.device, 'torch': torch.__version__,
    'network': args.network if backbone is not None else None, 'batch_size': args.batch_size,
    'num_classes': args.num_classes, 'sample_rate': args.sample_rate, 'steps': args.steps,
    'step_ms': round(median, 3), 'step_ms_min': round(times[0], 3),
    'samples_per_s': round(args.batch_size * 1000 / median, 2),
}
if cuda:
    peak = torch.cuda.max_memory_allocated(device)
    result['peak_device_mb'] = round(peak / 2**20, 1)
    result['device_bytes_per_class'] = round((peak - before) / args.num_classes, 1)
print(json.dumps(result), flush=True)
torch.distributed.destroy_process_group()
