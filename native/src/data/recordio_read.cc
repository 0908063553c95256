// RecordIO record reading (see recordio_read.h).
#include "data/recordio_read.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace arcface {

namespace {

constexpr uint32_t kMagic = 0xced7230a;
// A record is below 2^29 bytes per part; a corrupt chain of continuation parts stops here.
constexpr size_t kMaxRecord = size_t(1) << 30;

std::string Hex(uint32_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Reads exactly n bytes at pos; false when the file ends first.
bool ReadAt(int fd, uint8_t* out, size_t n, uint64_t pos) {
  while (n > 0) {
    const ssize_t got = pread(fd, out, n, static_cast<off_t>(pos));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("read failed at offset ") + std::to_string(pos) + ": " + strerror(errno));
    }
    if (got == 0) return false;
    out += got;
    n -= static_cast<size_t>(got);
    pos += static_cast<uint64_t>(got);
  }
  return true;
}

uint32_t U32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // little-endian files on little-endian hosts, as MXNet writes them
  return v;
}

}  // namespace

std::vector<uint8_t> ReadRecord(int fd, uint64_t offset) {
  // the declared lengths are checked against the file before anything is allocated for them
  struct stat st;
  if (fstat(fd, &st) != 0) throw std::runtime_error(std::string("cannot stat the record file: ") + strerror(errno));
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  std::vector<uint8_t> record;
  uint64_t pos = offset;
  for (int part = 0;; ++part) {
    uint8_t head[8];
    if (!ReadAt(fd, head, 8, pos)) {
      throw std::runtime_error("truncated record: the file ends inside the record at offset " + std::to_string(offset));
    }
    const uint32_t magic = U32(head), lrec = U32(head + 4);
    if (magic != kMagic) {
      throw std::runtime_error("bad magic " + Hex(magic) + " at offset " + std::to_string(pos) + " (expected 0xced7230a)");
    }
    const uint32_t cflag = lrec >> 29, length = lrec & ((1u << 29) - 1);
    // parts: a whole record (0), or a first part (1), middle parts (2) and a last part (3)
    if ((part == 0) != (cflag == 0 || cflag == 1)) {
      throw std::runtime_error("bad continuation flag " + std::to_string(cflag) + " at offset " + std::to_string(pos));
    }
    const size_t padded = (size_t(length) + 3) & ~size_t(3);
    if (record.size() + padded + 4 > kMaxRecord) throw std::runtime_error("record at offset " + std::to_string(offset) + " is too large");
    if (pos + 8 + padded > file_size) {
      throw std::runtime_error("truncated record: the part at offset " + std::to_string(pos) + " declares " + std::to_string(length) +
                               " bytes but the file has " + std::to_string(file_size - std::min(file_size, pos + 8)) + " after its header");
    }
    const size_t at = record.size();
    record.resize(at + padded);
    if (!ReadAt(fd, record.data() + at, padded, pos + 8)) {
      throw std::runtime_error("truncated record: the file ends inside the record at offset " + std::to_string(offset));
    }
    record.resize(at + length);
    pos += 8 + padded;
    if (cflag == 0 || cflag == 3) return record;
    const uint8_t* m = reinterpret_cast<const uint8_t*>(&kMagic);
    record.insert(record.end(), m, m + 4);
  }
}

Unpacked UnpackHeader(const std::vector<uint8_t>& record) {
  constexpr size_t kHeader = 24;
  if (record.size() < kHeader) {
    throw std::runtime_error("record of " + std::to_string(record.size()) + " bytes is shorter than its 24-byte IRHeader");
  }
  const uint32_t flag = U32(record.data());
  float label;
  std::memcpy(&label, record.data() + 4, 4);
  Unpacked out;
  out.label = label;
  out.image_offset = kHeader;
  if (flag > 0) {
    if ((record.size() - kHeader) / 4 < flag) {
      throw std::runtime_error("IRHeader announces " + std::to_string(flag) + " labels but the record has " +
                               std::to_string(record.size()) + " bytes");
    }
    std::memcpy(&label, record.data() + kHeader, 4);
    out.label = label;
    out.image_offset = kHeader + size_t(flag) * 4;
  }
  return out;
}

}  // namespace arcface
