// Image decoding (JPEG through libjpeg-turbo, PNG through libpng), JPEG encoding and resampling,
// on 8-bit RGB images laid out height × width × 3. Thread-safe: each thread keeps its own codec state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace arcface {

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // HWC, RGB

  RgbImage() = default;
  RgbImage(int w, int h) : width(w), height(h), pixels(static_cast<size_t>(w) * h * 3) {}
};

// Decodes a JPEG or PNG (told apart by their signatures) to RGB; grey and palette images are
// expanded, alpha is dropped, 16-bit samples are scaled to 8. Throws std::runtime_error saying why
// the bytes are not a decodable image. Corrupt-data warnings that libjpeg recovers from are
// accepted, as OpenCV's imdecode (MXNet's decoder) accepts them.
RgbImage DecodeImage(const uint8_t* data, size_t size);

// Baseline JPEG, 4:2:0 chroma subsampling, accurate DCT.
std::vector<uint8_t> EncodeJpeg(const uint8_t* rgb, int width, int height, int quality);

// Linear resampling to width × height; when shrinking, the triangle filter widens with the scale
// factor (antialiased, as PIL's BILINEAR and DALI's linear resize).
RgbImage Resize(const RgbImage& src, int width, int height);

}  // namespace arcface
