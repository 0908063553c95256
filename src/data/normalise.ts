/**
 * uint8 pixels (0–255) to the network input, as arcface_torch's ToTensor + Normalize(0.5, 0.5):
 * (x / 255 − 0.5) / 0.5 in float32. Computed as a lookup in a 256-entry table, so the result is the
 * same bits on every device: a GPU divides by a scalar as a multiply by its reciprocal, which rounds
 * differently from the loader's float32 output (native/src/data/image_augment.cc), and from the CPU.
 */
import * as torch from '../torch/index.js';

// Math.fround of a double quotient/difference is the float32 operation's result: double has more than
// 2·24 + 2 bits, so rounding twice cannot differ from rounding once.
const TABLE = Float32Array.from({ length: 256 }, (_, v) => Math.fround(Math.fround(Math.fround(v / 255) - 0.5) / 0.5));

// On a GPU the table is sent once per device and kept for the process's life (otherwise every batch
// would copy it host → device again); on the CPU making it is a 1 KiB copy, and it is freed with the batch.
const deviceTables = new Map<string, torch.Tensor>();

function tableOn(device: string): torch.Tensor {
  if (device === 'cpu') return torch.tensor(TABLE);
  let table = deviceTables.get(device);
  if (!table) deviceTables.set(device, (table = torch.keep(torch.tensor(TABLE, { device }))));
  return table;
}

/** Float input is returned as float32 (a copy); uint8 goes through the table, on the images' device. */
export function normaliseImages(images: torch.Tensor): torch.Tensor {
  if (images.dtype !== 'uint8') return images.float();
  return torch.tidy(() => torch.indexSelect(tableOn(images.device), 0, images.reshape([-1]).long()).view(images.shape));
}
