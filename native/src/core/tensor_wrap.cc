// The JS-visible tensor object: ownership, metadata getters, and raw byte copies in and out.
#include "core/common.h"

#include <ATen/ops/empty.h>
#include <cstring>

namespace arcface {

namespace {
// Tags every TensorWrap so that unwrapping a foreign object is a TypeError, never a bad cast.
const napi_type_tag kTensorTag = {0x6172636661636574ULL, 0x74656e736f727331ULL};
// The tensor that the next constructor call adopts (constructors run synchronously on this thread).
at::Tensor g_pending;
// JS tensors holding a tensor (not yet disposed or collected): a leak check for tests.
int64_t g_live = 0;

int64_t TensorBytes(const at::Tensor& t) {
  return t.defined() ? static_cast<int64_t>(t.numel() * t.element_size()) : 0;
}
}  // namespace

Napi::Function TensorWrap::Define(Napi::Env env) {
  return DefineClass(env, "TensorBase", {
    InstanceMethod<&TensorWrap::Dispose>("dispose"),
    InstanceAccessor<&TensorWrap::IsDisposed>("isDisposed"),
    InstanceAccessor<&TensorWrap::Shape>("shape"),
    InstanceMethod<&TensorWrap::Strides>("strides"),
    InstanceMethod<&TensorWrap::StorageOffset>("storageOffset"),
    InstanceMethod<&TensorWrap::StorageKey>("storageKey"),
    InstanceAccessor<&TensorWrap::Dtype>("dtype"),
    InstanceAccessor<&TensorWrap::Device>("device"),
    InstanceAccessor<&TensorWrap::Numel>("numel"),
    InstanceAccessor<&TensorWrap::Ndim>("ndim"),
    InstanceAccessor<&TensorWrap::GetRequiresGrad, &TensorWrap::SetRequiresGrad>("requiresGrad"),
    InstanceAccessor<&TensorWrap::GetGrad, &TensorWrap::SetGrad>("grad"),
    InstanceAccessor<&TensorWrap::IsLeaf>("isLeaf"),
    InstanceMethod<&TensorWrap::IsContiguous>("isContiguous"),
    InstanceMethod<&TensorWrap::ToBuffer>("toBuffer"),
    InstanceMethod<&TensorWrap::SameTensor>("sameTensor"),
  });
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  if (!g_pending.defined()) {
    throw Napi::TypeError::New(info.Env(), "Tensors are made by torch functions (tensor, zeros, ...), not by `new`");
  }
  tensor_ = std::move(g_pending);
  g_pending = at::Tensor();
  ++g_live;
  napi_type_tag_object(info.Env(), info.This(), &kTensorTag);
  accounted_bytes_ = TensorBytes(tensor_);
  if (accounted_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), accounted_bytes_);
}

TensorWrap::~TensorWrap() { release(); }

void TensorWrap::release() {
  if (accounted_bytes_ > 0) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -accounted_bytes_);
    accounted_bytes_ = 0;
  }
  if (tensor_.defined()) --g_live;
  tensor_ = at::Tensor();
}

at::Tensor& TensorWrap::tensor(Napi::Env env) {
  if (!tensor_.defined()) throw Napi::Error::New(env, "Tensor has been disposed");
  return tensor_;
}

Napi::Value WrapTensor(Napi::Env env, at::Tensor tensor) {
  auto* data = env.GetInstanceData<AddonData>();
  if (data->tensor_class.IsEmpty()) throw Napi::Error::New(env, "arcface native: setTensorClass was not called");
  g_pending = std::move(tensor);
  try {
    return data->tensor_class.New({});
  } catch (...) {
    g_pending = at::Tensor();
    throw;
  }
}

bool IsTensor(Napi::Value value) {
  if (!value.IsObject()) return false;
  bool tagged = false;
  napi_check_object_type_tag(value.Env(), value, &kTensorTag, &tagged);
  return tagged;
}

at::Tensor& UnwrapTensor(Napi::Value value, const char* what) {
  if (!IsTensor(value)) throw Napi::TypeError::New(value.Env(), std::string(what) + ": expected a Tensor");
  return TensorWrap::Unwrap(value.As<Napi::Object>())->tensor(value.Env());
}

Napi::Value TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

Napi::Value TensorWrap::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}

static Napi::Array IntArray(Napi::Env env, c10::IntArrayRef values) {
  auto out = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) out.Set(i, Napi::Number::New(env, static_cast<double>(values[i])));
  return out;
}

Napi::Value TensorWrap::Shape(const Napi::CallbackInfo& info) { return IntArray(info.Env(), tensor(info.Env()).sizes()); }
Napi::Value TensorWrap::Strides(const Napi::CallbackInfo& info) { return IntArray(info.Env(), tensor(info.Env()).strides()); }
Napi::Value TensorWrap::StorageOffset(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tensor(info.Env()).storage_offset()));
}

// Identifies the storage (for deduplicating shared storages when saving) and its element count.
Napi::Value TensorWrap::StorageKey(const Napi::CallbackInfo& info) {
  const auto& t = tensor(info.Env());
  auto out = Napi::Object::New(info.Env());
  char key[32];
  snprintf(key, sizeof key, "%p", static_cast<const void*>(t.storage().unsafeGetStorageImpl()));
  out.Set("key", key);
  out.Set("nbytes", Napi::Number::New(info.Env(), static_cast<double>(t.storage().nbytes())));
  return out;
}

Napi::Value TensorWrap::Dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DtypeName(tensor(info.Env()).scalar_type()));
}
Napi::Value TensorWrap::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), tensor(info.Env()).device().str());
}
Napi::Value TensorWrap::Numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tensor(info.Env()).numel()));
}
Napi::Value TensorWrap::Ndim(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tensor(info.Env()).dim()));
}

Napi::Value TensorWrap::GetRequiresGrad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensor(info.Env()).requires_grad());
}
void TensorWrap::SetRequiresGrad(const Napi::CallbackInfo& info, const Napi::Value& value) {
  try {
    tensor(info.Env()).set_requires_grad(value.ToBoolean().Value());
  } catch (const std::exception& e) {
    ThrowAsJs(info.Env(), e);
  }
}

// Each read returns a new JS Tensor viewing the same gradient (dispose it like any other).
Napi::Value TensorWrap::GetGrad(const Napi::CallbackInfo& info) {
  const at::Tensor& grad = tensor(info.Env()).grad();
  if (!grad.defined()) return info.Env().Undefined();
  return WrapTensor(info.Env(), grad);
}
void TensorWrap::SetGrad(const Napi::CallbackInfo& info, const Napi::Value& value) {
  try {
    if (value.IsUndefined() || value.IsNull()) {
      tensor(info.Env()).mutable_grad() = at::Tensor();
    } else {
      tensor(info.Env()).mutable_grad() = UnwrapTensor(value, "grad");
    }
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowAsJs(info.Env(), e);
  }
}

Napi::Value TensorWrap::IsLeaf(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensor(info.Env()).is_leaf());
}

Napi::Value TensorWrap::IsContiguous(const Napi::CallbackInfo& info) {
  auto format = c10::MemoryFormat::Contiguous;
  if (info.Length() > 0 && info[0].IsString() && info[0].As<Napi::String>().Utf8Value() == "channels_last") {
    format = c10::MemoryFormat::ChannelsLast;
  }
  return Napi::Boolean::New(info.Env(), tensor(info.Env()).is_contiguous(format));
}

// A copy of the elements in row-major order as an ArrayBuffer (the tensor may live anywhere).
Napi::Value TensorWrap::ToBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    at::Tensor t = tensor(env).detach().to(c10::kCPU).contiguous();
    const size_t nbytes = t.numel() * t.element_size();
    auto buffer = Napi::ArrayBuffer::New(env, nbytes);
    if (nbytes > 0) std::memcpy(buffer.Data(), t.data_ptr(), nbytes);
    return buffer;
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

Napi::Value TensorWrap::SameTensor(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensor(info.Env()).is_same(UnwrapTensor(info[0], "sameTensor")));
}

// fromBuffer(view: ArrayBufferView, dtype: string, shape: number[]): a new CPU tensor holding a copy.
static Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() && !info[0].IsDataView()) throw Napi::TypeError::New(env, "fromBuffer: expected a typed array");
  auto dtype = ParseDtype(env, info[1].As<Napi::String>().Utf8Value());
  auto shape_js = info[2].As<Napi::Array>();
  std::vector<int64_t> shape(shape_js.Length());
  int64_t numel = 1;
  for (uint32_t i = 0; i < shape_js.Length(); ++i) {
    double d = shape_js.Get(i).As<Napi::Number>().DoubleValue();
    if (d < 0 || d != static_cast<double>(static_cast<int64_t>(d))) {
      throw Napi::RangeError::New(env, "fromBuffer: shape entries must be non-negative integers");
    }
    shape[i] = static_cast<int64_t>(d);
    numel *= shape[i];
  }
  const uint8_t* src;
  size_t src_bytes;
  if (info[0].IsTypedArray()) {
    auto view = info[0].As<Napi::TypedArray>();
    src = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    src_bytes = view.ByteLength();
  } else {
    auto view = info[0].As<Napi::DataView>();
    src = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    src_bytes = view.ByteLength();
  }
  const size_t want = numel * c10::elementSize(dtype);
  if (src_bytes != want) {
    throw Napi::RangeError::New(env, "fromBuffer: " + std::to_string(src_bytes) + " bytes given, shape and dtype need " +
                                         std::to_string(want));
  }
  try {
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (want > 0) std::memcpy(t.data_ptr(), src, want);
    return WrapTensor(env, std::move(t));
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

static Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(g_live));
}

void InitTensorFactories(Napi::Env env, Napi::Object exports) {
  exports.Set("fromBuffer", Napi::Function::New(env, FromBuffer));
  exports.Set("liveTensors", Napi::Function::New(env, LiveTensors));
}

}  // namespace arcface
