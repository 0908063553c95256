// JS access to the data pipeline: `new ImageDecoder({threads})` decodes and augments whole batches
// on its own threads (records read straight from a .rec file, image files, or bytes in memory) into
// an N × 3 × H × W tensor and settles a promise; plus one-image helpers (decodeImage, encodeJpeg,
// resizeImage) and the generated-faces renderer. src/data/decode.ts is the TypeScript side.
#include "core/common.h"
#include "data/face_render.h"
#include "data/image_augment.h"
#include "data/image_codec.h"
#include "data/recordio_read.h"
#include "core/thread_pool.h"

#include <ATen/Context.h>
#include <ATen/ops/empty.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>

namespace arcface {

namespace {

double NumberOr(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("decode: option '") + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

Napi::Uint8Array Bytes(Napi::Value v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a Uint8Array");
  }
  return v.As<Napi::Uint8Array>();
}

std::vector<double> Float64s(Napi::Value v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a Float64Array");
  }
  auto a = v.As<Napi::Float64Array>();
  return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Value ToJs(Napi::Env env, const std::vector<uint8_t>& bytes) {
  return Napi::Buffer<uint8_t>::Copy(env, bytes.data(), bytes.size());
}

// The whole file, refused above max_bytes before anything is allocated for it.
std::vector<uint8_t> ReadFile(const std::string& path, uint64_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("cannot open: ") + strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    throw std::runtime_error(std::string("cannot stat: ") + strerror(err));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    close(fd);
    throw std::runtime_error("image file of " + std::to_string(st.st_size) + " bytes is over the cap of " + std::to_string(max_bytes) +
                             " bytes (maxImageBytes)");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  bytes.resize(got);
  return bytes;
}

// One batch: where its images come from, how to treat them, and what came out.
struct DecodeJob {
  enum Kind { kRecord, kFile, kEncoded, kRgb } kind = kEncoded;
  int fd = -1;                        // kRecord: the .rec file (owned by the decoder)
  std::vector<uint64_t> offsets;      // kRecord
  std::vector<std::string> paths;     // kFile
  uint64_t max_file_bytes = uint64_t(64) << 20;  // kFile: larger files are per-sample errors
  std::vector<const uint8_t*> data;   // kEncoded, kRgb: JS memory kept alive by `refs`
  std::vector<size_t> sizes;
  std::vector<Napi::ObjectReference> refs;
  int rgb_width = 0, rgb_height = 0;  // kRgb
  std::vector<uint64_t> keys;         // per sample: the augmentation stream
  uint64_t seed = 0, epoch = 0;
  int width = 112, height = 112;
  bool resize = true;
  AugmentOptions augment;
  at::Tensor out;

  std::vector<double> labels;  // kRecord: from the IRHeaders
  std::vector<int32_t> sizes_seen;  // width, height of each image as decoded
  std::vector<std::string> errors;
  std::vector<uint8_t> failed;
  std::atomic<int> resized{0};
  std::atomic<int> remaining{0};
  Napi::Promise::Deferred deferred;

  explicit DecodeJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}

  size_t size() const { return keys.size(); }

  // Decodes sample i into its slot; a failure leaves the slot zero and records why.
  void Run(size_t i) {
    const size_t slot = size_t(3) * width * height;
    try {
      RgbImage img;
      std::vector<uint8_t> bytes;
      const uint8_t* ptr = nullptr;
      size_t n = 0;
      if (kind == kRecord) {
        bytes = ReadRecord(fd, offsets[i]);
        const Unpacked u = UnpackHeader(bytes);
        labels[i] = u.label;
        ptr = bytes.data() + u.image_offset;
        n = bytes.size() - u.image_offset;
      } else if (kind == kFile) {
        bytes = ReadFile(paths[i], max_file_bytes);
        ptr = bytes.data();
        n = bytes.size();
      } else {
        ptr = data[i];
        n = sizes[i];
      }
      if (kind == kRgb) {
        img = RgbImage(rgb_width, rgb_height);
        std::memcpy(img.pixels.data(), ptr, img.pixels.size());
      } else {
        img = DecodeImage(ptr, n);
      }
      sizes_seen[2 * i] = img.width;
      sizes_seen[2 * i + 1] = img.height;
      if (img.width != width || img.height != height) {
        if (!resize) {
          throw std::runtime_error("image is " + std::to_string(img.width) + "×" + std::to_string(img.height) + ", expected " +
                                   std::to_string(width) + "×" + std::to_string(height) + " (resizing is off)");
        }
        img = Resize(img, width, height);
        ++resized;
      }
      Rng rng(SampleSeed(seed, epoch, keys[i]));
      const bool flip = Augment(img, rng, augment);
      if (out.scalar_type() == at::kByte) {
        WriteChw(img, flip, static_cast<uint8_t*>(out.data_ptr()) + i * slot);
      } else {
        WriteChw(img, flip, static_cast<float*>(out.data_ptr()) + i * slot);
      }
    } catch (const std::exception& e) {
      errors[i] = e.what();
      failed[i] = 1;
      std::memset(static_cast<uint8_t*>(out.data_ptr()) + i * slot * out.element_size(), 0, slot * out.element_size());
    }
  }
};

// Settles a job's promise on the JS thread once all its samples are done (see ImageDecoder::Complete).
class ImageDecoder;
void CompleteJob(Napi::Env env, Napi::Function, ImageDecoder* self, DecodeJob* job);
using Tsfn = Napi::TypedThreadSafeFunction<ImageDecoder, DecodeJob, CompleteJob>;

// Who frees what between the decoder object and its thread-safe function: at process exit their
// finalizers run in either order, so whichever comes second deletes this.
struct TsfnLife {
  ImageDecoder* owner;
  bool finalized = false;
};

class ImageDecoder : public Napi::ObjectWrap<ImageDecoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ImageDecoder", {
      InstanceMethod<&ImageDecoder::Decode>("decode"),
      InstanceMethod<&ImageDecoder::Close>("close"),
      InstanceAccessor<&ImageDecoder::Threads>("threads"),
    });
  }

  explicit ImageDecoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ImageDecoder>(info) {
    Napi::Env env = info.Env();
    const int threads = static_cast<int>(NumberOr(info[0].As<Napi::Object>(), "threads", 2));
    if (threads < 1 || threads > 256) throw Napi::RangeError::New(env, "ImageDecoder: threads must be in [1, 256]");
    pool_ = std::make_unique<WorkerPool>(threads);
    life_ = new TsfnLife{this};
    tsfn_ = Tsfn::New(env, "arcface-image-decoder", 0, 1, this, &ImageDecoder::Finalized, life_);
    tsfn_.Unref(env);  // an idle decoder does not keep the process alive
  }

  ~ImageDecoder() override {
    if (life_->finalized) {
      delete life_;
      return;
    }
    life_->owner = nullptr;
    Shutdown();
  }

  void Complete(Napi::Env env, std::unique_ptr<DecodeJob> job) {
    Napi::HandleScope scope(env);
    if (--pending_ == 0) {
      tsfn_.Unref(env);
      Unref();
    }
    try {
      auto result = Napi::Object::New(env);
      result.Set("images", WrapTensor(env, std::move(job->out)));
      if (job->kind == DecodeJob::kRecord) {
        auto labels = Napi::Float64Array::New(env, job->size());
        std::copy(job->labels.begin(), job->labels.end(), labels.Data());
        result.Set("labels", labels);
      }
      auto errors = Napi::Array::New(env, job->size());
      for (size_t i = 0; i < job->size(); ++i) {
        errors.Set(i, job->failed[i] ? Napi::Value(Napi::String::New(env, job->errors[i])) : env.Null());
      }
      result.Set("errors", errors);
      auto sizes = Napi::Int32Array::New(env, 2 * job->size());
      std::copy(job->sizes_seen.begin(), job->sizes_seen.end(), sizes.Data());
      result.Set("sizes", sizes);
      result.Set("resized", Napi::Number::New(env, job->resized.load()));
      job->deferred.Resolve(result);
    } catch (const Napi::Error& e) {
      job->deferred.Reject(e.Value());
    }
  }

 private:
  static void Finalized(Napi::Env, TsfnLife* life, ImageDecoder*) {
    if (!life->owner) {
      delete life;
      return;
    }
    life->finalized = true;
    life->owner->pool_.reset();  // workers still running see a closing function and drop their results
  }

  // decode({rec: {path, offsets} | files | encoded | rgb: {buffers, width, height}, keys, seed, epoch,
  //         width, height, resize, dtype, pinMemory, flip, dali, resizeProb, blurProb, hsvProb, grayProb})
  Napi::Value Decode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!pool_) throw Napi::Error::New(env, "ImageDecoder has been closed");
    auto o = info[0].As<Napi::Object>();
    auto job = std::make_unique<DecodeJob>(env);
    for (double key : Float64s(o.Get("keys"), "decode keys")) job->keys.push_back(static_cast<uint64_t>(key));
    const size_t n = job->size();
    ReadSources(env, o, *job, n);
    job->seed = static_cast<uint64_t>(NumberOr(o, "seed", 0));
    job->epoch = static_cast<uint64_t>(NumberOr(o, "epoch", 0));
    const double max_file = NumberOr(o, "maxImageBytes", double(job->max_file_bytes));
    if (!(max_file >= 1)) throw Napi::RangeError::New(env, "decode: maxImageBytes must be at least 1");
    job->max_file_bytes = static_cast<uint64_t>(max_file);
    job->width = static_cast<int>(NumberOr(o, "width", 112));
    job->height = static_cast<int>(NumberOr(o, "height", 112));
    if (job->width < 1 || job->height < 1 || job->width > 4096 || job->height > 4096) {
      throw Napi::RangeError::New(env, "decode: width and height must be in [1, 4096]");
    }
    job->resize = o.Get("resize").IsUndefined() || o.Get("resize").ToBoolean().Value();
    job->augment.flip = NumberOr(o, "flip", 0.5);
    job->augment.dali = o.Get("dali").ToBoolean().Value();
    job->augment.resize = NumberOr(o, "resizeProb", job->augment.resize);
    job->augment.blur = NumberOr(o, "blurProb", job->augment.blur);
    job->augment.hsv = NumberOr(o, "hsvProb", job->augment.hsv);
    job->augment.gray = NumberOr(o, "grayProb", job->augment.gray);
    const bool as_uint8 = o.Get("dtype").IsString() && o.Get("dtype").As<Napi::String>().Utf8Value() == "uint8";
    // page-locked memory only where there is a GPU to copy to
    const bool pin = o.Get("pinMemory").ToBoolean().Value() && at::globalContext().hasCUDA();
    try {
      job->out = at::empty({static_cast<int64_t>(n), 3, job->height, job->width},
                           at::TensorOptions().dtype(as_uint8 ? at::kByte : at::kFloat).pinned_memory(pin));
    } catch (const std::exception& e) {
      ThrowAsJs(env, e);
    }
    job->labels.assign(n, 0);
    job->sizes_seen.assign(2 * n, 0);
    job->errors.resize(n);
    job->failed.assign(n, 0);
    auto promise = job->deferred.Promise();
    if (pending_++ == 0) {
      tsfn_.Ref(env);
      Ref();  // the JS object must outlive its jobs
    }
    if (n == 0) {
      Complete(env, std::move(job));
      return promise;
    }
    job->remaining = static_cast<int>(n);
    DecodeJob* shared = job.release();
    for (size_t i = 0; i < n; ++i) {
      pool_->Submit([this, shared, i] {
        shared->Run(i);
        if (--shared->remaining == 0) tsfn_.NonBlockingCall(shared);
      });
    }
    return promise;
  }

  void ReadSources(Napi::Env env, Napi::Object o, DecodeJob& job, size_t n) {
    auto check = [&](size_t count, const char* what) {
      if (count != n) throw Napi::RangeError::New(env, std::string("decode: ") + what + " and keys differ in length");
    };
    if (o.Get("rec").IsObject()) {
      auto rec = o.Get("rec").As<Napi::Object>();
      job.kind = DecodeJob::kRecord;
      job.fd = OpenRecordFile(env, rec.Get("path").As<Napi::String>().Utf8Value());
      const std::vector<double> offsets = Float64s(rec.Get("offsets"), "decode rec.offsets");
      check(offsets.size(), "rec.offsets");
      for (double offset : offsets) job.offsets.push_back(static_cast<uint64_t>(offset));
    } else if (o.Get("files").IsArray()) {
      auto files = o.Get("files").As<Napi::Array>();
      job.kind = DecodeJob::kFile;
      check(files.Length(), "files");
      for (size_t i = 0; i < n; ++i) job.paths.push_back(files.Get(i).As<Napi::String>().Utf8Value());
    } else {
      const bool rgb = o.Get("rgb").IsObject();
      Napi::Array buffers = (rgb ? o.Get("rgb").As<Napi::Object>().Get("buffers") : o.Get("encoded")).As<Napi::Array>();
      if (!buffers.IsArray()) throw Napi::TypeError::New(env, "decode: give one of rec, files, encoded or rgb");
      job.kind = rgb ? DecodeJob::kRgb : DecodeJob::kEncoded;
      check(buffers.Length(), rgb ? "rgb.buffers" : "encoded");
      if (rgb) {
        auto spec = o.Get("rgb").As<Napi::Object>();
        job.rgb_width = static_cast<int>(NumberOr(spec, "width", 0));
        job.rgb_height = static_cast<int>(NumberOr(spec, "height", 0));
      }
      for (size_t i = 0; i < n; ++i) {
        auto bytes = Bytes(buffers.Get(i), "decode buffers");
        if (rgb && bytes.ByteLength() != size_t(job.rgb_width) * job.rgb_height * 3) {
          throw Napi::RangeError::New(env, "decode: rgb buffer " + std::to_string(i) + " is not width × height × 3 bytes");
        }
        job.data.push_back(bytes.Data());
        job.sizes.push_back(bytes.ByteLength());
        job.refs.push_back(Napi::Persistent(bytes.As<Napi::Object>()));
      }
    }
  }

  // .rec files stay open for the decoder's lifetime: workers pread them concurrently.
  int OpenRecordFile(Napi::Env env, const std::string& path) {
    auto it = fds_.find(path);
    if (it != fds_.end()) return it->second;
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Napi::Error::New(env, path + ": cannot open (" + strerror(errno) + ")");
    fds_[path] = fd;
    return fd;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  // Finishes the queued samples (their promises still settle), then frees threads and files.
  void Shutdown() {
    if (!pool_) return;
    pool_.reset();
    for (auto& [path, fd] : fds_) close(fd);
    fds_.clear();
    if (!life_->finalized) tsfn_.Release();
  }

  Napi::Value Threads(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), pool_ ? pool_->size() : 0);
  }

  std::unique_ptr<WorkerPool> pool_;
  Tsfn tsfn_;
  TsfnLife* life_ = nullptr;
  int pending_ = 0;
  std::map<std::string, int> fds_;
};

void CompleteJob(Napi::Env env, Napi::Function, ImageDecoder* self, DecodeJob* raw) {
  std::unique_ptr<DecodeJob> job(raw);
  if (env != nullptr) self->Complete(env, std::move(job));  // null: the environment is going away
}

template <typename Fn>
auto Guard(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// decodeImage(bytes) → {width, height, pixels: RGB HWC}
Napi::Value DecodeImageJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto bytes = Bytes(info[0], "decodeImage");
  RgbImage img = Guard(env, [&] { return DecodeImage(bytes.Data(), bytes.ByteLength()); });
  auto out = Napi::Object::New(env);
  out.Set("width", img.width);
  out.Set("height", img.height);
  out.Set("pixels", ToJs(env, img.pixels));
  return out;
}

RgbImage ImageArg(const Napi::CallbackInfo& info, const char* what) {
  auto pixels = Bytes(info[0], what);
  const int w = info[1].As<Napi::Number>().Int32Value(), h = info[2].As<Napi::Number>().Int32Value();
  if (w < 1 || h < 1 || pixels.ByteLength() != size_t(w) * h * 3) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + ": pixels must hold width × height × 3 bytes");
  }
  RgbImage img(w, h);
  std::memcpy(img.pixels.data(), pixels.Data(), img.pixels.size());
  return img;
}

// encodeJpeg(pixels, width, height, quality) → JPEG bytes
Napi::Value EncodeJpegJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RgbImage img = ImageArg(info, "encodeJpeg");
  const int quality = info[3].As<Napi::Number>().Int32Value();
  return ToJs(env, Guard(env, [&] { return EncodeJpeg(img.pixels.data(), img.width, img.height, quality); }));
}

// resizeImage(pixels, width, height, outWidth, outHeight) → RGB pixels
Napi::Value ResizeImageJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RgbImage img = ImageArg(info, "resizeImage");
  const int w = info[3].As<Napi::Number>().Int32Value(), h = info[4].As<Napi::Number>().Int32Value();
  if (w < 1 || h < 1 || w > 16384 || h > 16384) throw Napi::RangeError::New(env, "resizeImage: bad output size");
  return ToJs(env, Resize(img, w, h).pixels);
}

// renderFaces({seed, identities, images, quality, threads}) → one image per (identity, image) pair:
// JPEG bytes, or raw RGB pixels when quality is 0.
Napi::Value RenderFacesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = info[0].As<Napi::Object>();
  const uint64_t seed = static_cast<uint64_t>(NumberOr(o, "seed", 0));
  const std::vector<double> id_list = Float64s(o.Get("identities"), "renderFaces identities");
  const std::vector<double> image_list = Float64s(o.Get("images"), "renderFaces images");
  if (id_list.size() != image_list.size()) throw Napi::RangeError::New(env, "renderFaces: identities and images differ in length");
  const int quality = static_cast<int>(NumberOr(o, "quality", 90));
  const int threads = static_cast<int>(NumberOr(o, "threads", 1));
  const size_t n = id_list.size();
  std::vector<std::vector<uint8_t>> out(n);
  std::vector<std::string> errors(n);
  ParallelFor(static_cast<int64_t>(n), std::max(1, threads), [&](int64_t i) {
    try {
      RgbImage img = RenderFace(seed, static_cast<uint64_t>(id_list[i]), static_cast<uint64_t>(image_list[i]));
      out[i] = quality > 0 ? EncodeJpeg(img.pixels.data(), img.width, img.height, quality) : std::move(img.pixels);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  });
  auto result = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) throw Napi::Error::New(env, "renderFaces: " + errors[i]);
    result.Set(i, ToJs(env, out[i]));
  }
  return result;
}

}  // namespace

void InitData(Napi::Env env, Napi::Object exports) {
  exports.Set("ImageDecoder", ImageDecoder::Define(env));
  exports.Set("decodeImage", Napi::Function::New(env, DecodeImageJs));
  exports.Set("encodeJpeg", Napi::Function::New(env, EncodeJpegJs));
  exports.Set("resizeImage", Napi::Function::New(env, ResizeImageJs));
  exports.Set("renderFaces", Napi::Function::New(env, RenderFacesJs));
}

}  // namespace arcface
