// Reading one record of an MXNet RecordIO file (dmlc-core's recordio format) and its IRHeader, for
// the decode workers. src/data/recordio.ts is the TypeScript twin used outside the hot path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace arcface {

// The record starting at byte `offset` of the open file `fd`: its parts joined, with the magic
// re-inserted between them (the writer splits a record wherever the magic occurs at an aligned
// position). Throws std::runtime_error naming the offset on a bad magic, a bad part sequence or a
// file that ends inside the record.
std::vector<uint8_t> ReadRecord(int fd, uint64_t offset);

// mxnet.recordio.unpack: the IRHeader (flag u32, label f32, id u64, id2 u64, then `flag` float32
// labels) in front of the image. The label is the header's, or the first extra label when flag > 0.
struct Unpacked {
  double label = 0;
  size_t image_offset = 0;
};
Unpacked UnpackHeader(const std::vector<uint8_t>& record);

}  // namespace arcface
