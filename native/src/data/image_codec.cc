// JPEG and PNG decoding, JPEG encoding, antialiased linear resampling (see image_codec.h).
#include "data/image_codec.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <stdexcept>
#include <string>

namespace arcface {

namespace {

// Bounds that keep a corrupt header from asking for gigabytes.
constexpr int kMaxSide = 16384;
constexpr int64_t kMaxPixels = int64_t(64) << 20;

void CheckSize(int width, int height) {
  if (width <= 0 || height <= 0) throw std::runtime_error("image has no pixels");
  if (width > kMaxSide || height > kMaxSide || int64_t(width) * height > kMaxPixels) {
    throw std::runtime_error("image of " + std::to_string(width) + "×" + std::to_string(height) + " pixels is too large");
  }
}

// One TurboJPEG handle per thread and direction: handles are not thread-safe, and creating one
// per image would cost more than decoding a 112×112 face. A handle that saw corrupt data is
// replaced: its decoder state was seen to make the next, valid image fail ("Bogus Huffman table").
class TjHandle {
 public:
  explicit TjHandle(bool compress) : compress_(compress) { Open(); }
  ~TjHandle() { tjDestroy(handle_); }
  tjhandle get() const { return handle_; }
  void Reset() {
    tjDestroy(handle_);
    Open();
  }

 private:
  void Open() {
    handle_ = compress_ ? tjInitCompress() : tjInitDecompress();
    if (!handle_) throw std::runtime_error(std::string("libjpeg-turbo: ") + tjGetErrorStr2(nullptr));
  }
  bool compress_;
  tjhandle handle_ = nullptr;
};

TjHandle& Decompressor() {
  thread_local TjHandle h(false);
  return h;
}

TjHandle& Compressor() {
  thread_local TjHandle h(true);
  return h;
}

RgbImage DecodeJpeg(const uint8_t* data, size_t size) {
  TjHandle& handle = Decompressor();
  tjhandle tj = handle.get();
  auto fail = [&](const char* what) {
    const std::string message = std::string(what) + " (" + tjGetErrorStr2(tj) + ")";
    handle.Reset();
    throw std::runtime_error(message);
  };
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  bool warned = false;  // libjpeg recovered from corrupt data: keep the image, not the handle
  if (tjDecompressHeader3(tj, data, static_cast<unsigned long>(size), &width, &height, &subsamp, &colorspace) != 0) {
    if (tjGetErrorCode(tj) != TJERR_WARNING) fail("not a decodable JPEG");
    warned = true;
  }
  if (width <= 0 || height <= 0) {
    handle.Reset();
    throw std::runtime_error("not a decodable JPEG (no image size in its header)");
  }
  CheckSize(width, height);
  RgbImage img(width, height);
  // Accurate DCT and fancy upsampling (no TJFLAG_FAST*): libjpeg's defaults, as PIL and OpenCV use.
  if (tjDecompress2(tj, data, static_cast<unsigned long>(size), img.pixels.data(), width, 0, height, TJPF_RGB, 0) != 0) {
    if (tjGetErrorCode(tj) != TJERR_WARNING) fail("corrupt JPEG");
    warned = true;
  }
  if (warned) handle.Reset();
  return img;
}

struct PngSource {
  const uint8_t* data;
  size_t left;
  std::string error;
};

void PngRead(png_structp png, png_bytep out, png_size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->left) png_error(png, "truncated PNG data");
  std::memcpy(out, src->data, n);
  src->data += n;
  src->left -= n;
}

void PngError(png_structp png, png_const_charp message) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  src->error = message;
  png_longjmp(png, 1);
}

void PngWarning(png_structp, png_const_charp) {}

// libpng reports errors by longjmp: nothing with a destructor may be created between setjmp and
// the calls that can jump, so the image buffer and row pointers are sized before them.
bool DecodePngInto(const uint8_t* data, size_t size, RgbImage* img, std::vector<png_bytep>* rows, PngSource* src) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, PngError, PngWarning);
  if (!png) {
    src->error = "out of memory";
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    src->error = "out of memory";
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, src, PngRead);
  png_set_user_limits(png, kMaxSide, kMaxSide);
  png_read_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  if (int64_t(width) * height > kMaxPixels) png_error(png, "image is too large");
  const int color = png_get_color_type(png, info);
  if (png_get_bit_depth(png, info) == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_expand_gray_1_2_4_to_8(png);
    png_set_gray_to_rgb(png);
  }
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != size_t(width) * 3) png_error(png, "unsupported PNG pixel layout");
  img->width = static_cast<int>(width);
  img->height = static_cast<int>(height);
  img->pixels.resize(size_t(width) * height * 3);
  rows->resize(height);
  for (png_uint_32 y = 0; y < height; ++y) (*rows)[y] = img->pixels.data() + size_t(y) * width * 3;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

RgbImage DecodePng(const uint8_t* data, size_t size) {
  RgbImage img;
  std::vector<png_bytep> rows;
  PngSource src{data, size, {}};
  if (!DecodePngInto(data, size, &img, &rows, &src)) throw std::runtime_error("corrupt PNG (" + src.error + ")");
  return img;
}

// Per output pixel: the first source pixel and the normalised triangle-filter weights.
struct Taps {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;  // `width` floats per output pixel
  int width = 0;
};

Taps ComputeTaps(int in_size, int out_size) {
  const double scale = double(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the triangle filter's radius is 1 source pixel, widened
  Taps taps;
  taps.width = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.first.resize(out_size);
  taps.count.resize(out_size);
  taps.weights.assign(size_t(out_size) * taps.width, 0.f);
  for (int x = 0; x < out_size; ++x) {
    const double center = (x + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    double total = 0;
    float* w = &taps.weights[size_t(x) * taps.width];
    for (int i = lo; i < hi; ++i) {
      const double t = std::max(0.0, 1.0 - std::abs((i + 0.5 - center) / filter_scale));
      w[i - lo] = static_cast<float>(t);
      total += t;
    }
    for (int i = 0; i < hi - lo; ++i) w[i] = static_cast<float>(w[i] / total);
    taps.first[x] = lo;
    taps.count[x] = hi - lo;
  }
  return taps;
}

uint8_t ToByte(float v) { return static_cast<uint8_t>(std::min(255.f, std::max(0.f, std::nearbyint(v)))); }

}  // namespace

RgbImage DecodeImage(const uint8_t* data, size_t size) {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return DecodeJpeg(data, size);
  if (size >= 8 && std::memcmp(data, kPng, 8) == 0) return DecodePng(data, size);
  if (size == 0) throw std::runtime_error("empty image data");
  throw std::runtime_error("not a JPEG or PNG image (unrecognised signature)");
}

std::vector<uint8_t> EncodeJpeg(const uint8_t* rgb, int width, int height, int quality) {
  tjhandle tj = Compressor().get();
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  if (tjCompress2(tj, rgb, width, 0, height, TJPF_RGB, &out, &out_size, TJSAMP_420, quality, 0) != 0) {
    if (out) tjFree(out);
    throw std::runtime_error(std::string("JPEG encoding failed (") + tjGetErrorStr2(tj) + ")");
  }
  std::vector<uint8_t> bytes(out, out + out_size);
  tjFree(out);
  return bytes;
}

RgbImage Resize(const RgbImage& src, int width, int height) {
  if (src.width == width && src.height == height) return src;
  const Taps tx = ComputeTaps(src.width, width);
  const Taps ty = ComputeTaps(src.height, height);
  // horizontal pass into floats, then vertical pass with one rounding at the end
  std::vector<float> rows(size_t(src.height) * width * 3);
  for (int y = 0; y < src.height; ++y) {
    const uint8_t* in = &src.pixels[size_t(y) * src.width * 3];
    float* out = &rows[size_t(y) * width * 3];
    for (int x = 0; x < width; ++x) {
      const float* w = &tx.weights[size_t(x) * tx.width];
      float r = 0, g = 0, b = 0;
      for (int k = 0; k < tx.count[x]; ++k) {
        const uint8_t* p = in + size_t(tx.first[x] + k) * 3;
        r += w[k] * p[0];
        g += w[k] * p[1];
        b += w[k] * p[2];
      }
      out[x * 3] = r;
      out[x * 3 + 1] = g;
      out[x * 3 + 2] = b;
    }
  }
  RgbImage dst(width, height);
  for (int y = 0; y < height; ++y) {
    const float* w = &ty.weights[size_t(y) * ty.width];
    uint8_t* out = &dst.pixels[size_t(y) * width * 3];
    for (int i = 0; i < width * 3; ++i) {
      float v = 0;
      for (int k = 0; k < ty.count[y]; ++k) v += w[k] * rows[size_t(ty.first[y] + k) * width * 3 + i];
      out[i] = ToByte(v);
    }
  }
  return dst;
}

}  // namespace arcface
