// Augmentations and normalisation (see image_augment.h). The DALI set follows arcface_torch's
// dataset.py dali_aug branch: the same probabilities, ranges and order, on uint8 images.
#include "data/image_augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace arcface {

namespace {

uint8_t ToByte(float v) { return static_cast<uint8_t>(std::min(255.f, std::max(0.f, v)) + 0.5f); }

// fn.gaussian_blur with only a window size: radius = (window − 1)/2, sigma = (radius − 1)·0.3 + 0.8,
// borders mirrored without repeating the edge pixel (reflect-101).
void GaussianBlur(RgbImage& img, int radius) {
  const float sigma = (radius - 1) * 0.3f + 0.8f;
  std::vector<float> k(2 * radius + 1);
  float total = 0;
  for (int i = -radius; i <= radius; ++i) total += k[i + radius] = std::exp(-0.5f * i * i / (sigma * sigma));
  for (float& v : k) v /= total;
  const int w = img.width, h = img.height;
  // source index of each tap, mirrored at the borders, for every position along a row or column
  auto taps = [&](int n) {
    std::vector<int> index(size_t(n) * k.size());
    for (int p = 0; p < n; ++p) {
      for (int i = -radius; i <= radius; ++i) {
        int q = p + i;
        while (n > 1 && (q < 0 || q >= n)) q = q < 0 ? -q : 2 * (n - 1) - q;
        index[size_t(p) * k.size() + i + radius] = n > 1 ? q : 0;
      }
    }
    return index;
  };
  const std::vector<int> tx = taps(w), ty = taps(h);
  std::vector<float> tmp(img.pixels.size());
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = &img.pixels[size_t(y) * w * 3];
    for (int x = 0; x < w; ++x) {
      float r = 0, g = 0, b = 0;
      for (size_t t = 0; t < k.size(); ++t) {
        const uint8_t* p = row + size_t(tx[size_t(x) * k.size() + t]) * 3;
        r += k[t] * p[0];
        g += k[t] * p[1];
        b += k[t] * p[2];
      }
      float* o = &tmp[(size_t(y) * w + x) * 3];
      o[0] = r;
      o[1] = g;
      o[2] = b;
    }
  }
  for (int y = 0; y < h; ++y) {
    uint8_t* out = &img.pixels[size_t(y) * w * 3];
    for (int i = 0; i < w * 3; ++i) {
      float v = 0;
      for (size_t t = 0; t < k.size(); ++t) v += k[t] * tmp[size_t(ty[size_t(y) * k.size() + t]) * w * 3 + i];
      out[i] = ToByte(v);
    }
  }
}

// fn.hsv: a linear transform in YIQ space — rotate the chroma plane by the hue delta (degrees),
// scale it by the saturation.
void Hsv(RgbImage& img, double hue_degrees, double saturation) {
  static const double kRgbToYiq[3][3] = {{0.299, 0.587, 0.114}, {0.596, -0.274, -0.321}, {0.211, -0.523, 0.311}};
  static const double kYiqToRgb[3][3] = {{1, 0.956, 0.621}, {1, -0.272, -0.647}, {1, -1.107, 1.705}};
  const double h = hue_degrees * M_PI / 180;
  const double twist[3][3] = {{1, 0, 0},
                              {0, saturation * std::cos(h), -saturation * std::sin(h)},
                              {0, saturation * std::sin(h), saturation * std::cos(h)}};
  float m[3][3] = {};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      double sum = 0;
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) sum += kYiqToRgb[i][k] * twist[k][l] * kRgbToYiq[l][j];
      m[i][j] = static_cast<float>(sum);
    }
  }
  for (size_t p = 0; p < img.pixels.size(); p += 3) {
    const float r = img.pixels[p], g = img.pixels[p + 1], b = img.pixels[p + 2];
    for (int i = 0; i < 3; ++i) img.pixels[p + i] = ToByte(m[i][0] * r + m[i][1] * g + m[i][2] * b);
  }
}

}  // namespace

uint64_t SampleSeed(uint64_t seed, uint64_t epoch, uint64_t key) {
  uint64_t s = seed;
  uint64_t h = SplitMix64(s);
  s = h ^ epoch;
  h = SplitMix64(s);
  s = h ^ key;
  return SplitMix64(s);
}

bool Augment(RgbImage& img, Rng& rng, const AugmentOptions& o) {
  const bool resize = rng.Coin(o.resize);
  // DALI: size uniform in [int(112·0.5), int(112·0.8)), converted to the nearest integer
  const double side = rng.Uniform(int(img.width * 0.5), int(img.width * 0.8));
  const bool blur = rng.Coin(o.blur);
  const int window = rng.Uniform(1, 2) < 1.5 ? 1 : 2;  // uniform [1, 2) rounded to INT32: 1 or 2
  const bool hsv = rng.Coin(o.hsv);
  const double hue = rng.Uniform(0, 20);
  const double saturation = rng.Uniform(1, 1.2);
  const bool gray = rng.Coin(o.gray);
  const bool flip = rng.Coin(o.flip);
  if (!o.dali) return flip;
  if (resize) {
    const int w = img.width, h = img.height;
    const int sw = std::max(1, static_cast<int>(std::nearbyint(side)));
    const int sh = std::max(1, static_cast<int>(std::nearbyint(side * h / w)));
    img = Resize(Resize(img, sw, sh), w, h);
  }
  if (blur) GaussianBlur(img, window);
  if (hsv) Hsv(img, hue, saturation);
  if (gray) Hsv(img, 0, 0);
  return flip;
}

namespace {

// HWC bytes → CHW slot, mirrored when `flip`; `convert` maps each byte to the output type.
template <typename T, typename Convert>
void WriteChwWith(const RgbImage& img, bool flip, T* out, Convert convert) {
  const int w = img.width, h = img.height;
  const size_t plane = size_t(w) * h;
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = &img.pixels[size_t(y) * w * 3];
    for (int x = 0; x < w; ++x) {
      const uint8_t* p = row + size_t(flip ? w - 1 - x : x) * 3;
      const size_t o = size_t(y) * w + x;
      for (int c = 0; c < 3; ++c) out[c * plane + o] = convert(p[c]);
    }
  }
}

}  // namespace

void WriteChw(const RgbImage& img, bool flip, float* out) {
  // float32 steps of ToTensor (x / 255) then Normalize ((t − 0.5) / 0.5): bit-identical
  WriteChwWith(img, flip, out, [](uint8_t v) { return (static_cast<float>(v) / 255.0f - 0.5f) / 0.5f; });
}

void WriteChw(const RgbImage& img, bool flip, uint8_t* out) {
  WriteChwWith(img, flip, out, [](uint8_t v) { return v; });
}

}  // namespace arcface
