// Generic access to every ATen operator through the c10 dispatcher.
//
// JS looks an operator up once by its schema name (`op("aten::conv2d", "")` → id) and then calls it
// with positional arguments (`call(id, x, w, b, stride, ...)`). Arguments are converted by the
// operator's schema types; calling through the dispatcher runs the autograd and autocast kernels
// exactly as a C++ or Python call would, so no op needs C++ of its own.
#include "core/common.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/List.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/Device.h>
#include <c10/core/Layout.h>
#include <c10/core/MemoryFormat.h>

#include <sstream>
#include <unordered_map>

namespace arcface {

namespace {

enum class Kind {
  Tensor, TensorList, OptionalTensorList, Int, Float, Bool, Scalar, IntList, FloatList, BoolList,
  ScalarType, Layout, MemoryFormat, Device, String, Generator,
};

struct ArgSpec {
  std::string name;
  Kind kind;
  bool optional;
  int32_t fixed_length;  // N of int[N]: a single number is repeated N times
  c10::optional<c10::IValue> default_value;
};

struct OpEntry {
  std::string name;
  c10::OperatorHandle handle;
  std::vector<ArgSpec> args;
  size_t num_returns;
};

std::vector<OpEntry> g_ops;
std::unordered_map<std::string, size_t> g_op_ids;  // "name.overload" → index in g_ops

Kind KindOf(const c10::TypePtr& type, const std::string& op, const std::string& arg) {
  using c10::TypeKind;
  switch (type->kind()) {
    case TypeKind::TensorType: return Kind::Tensor;
    case TypeKind::IntType: case TypeKind::SymIntType: return Kind::Int;
    case TypeKind::FloatType: return Kind::Float;
    case TypeKind::BoolType: return Kind::Bool;
    case TypeKind::NumberType: return Kind::Scalar;
    case TypeKind::ScalarTypeType: return Kind::ScalarType;
    case TypeKind::LayoutType: return Kind::Layout;
    case TypeKind::MemoryFormatType: return Kind::MemoryFormat;
    case TypeKind::DeviceObjType: return Kind::Device;
    case TypeKind::StringType: return Kind::String;
    case TypeKind::GeneratorType: return Kind::Generator;
    case TypeKind::ListType: {
      auto element = type->containedType(0);
      switch (element->kind()) {
        case TypeKind::TensorType: return Kind::TensorList;
        case TypeKind::OptionalType: return Kind::OptionalTensorList;
        case TypeKind::IntType: case TypeKind::SymIntType: return Kind::IntList;
        case TypeKind::FloatType: return Kind::FloatList;
        case TypeKind::BoolType: return Kind::BoolList;
        default: break;
      }
      break;
    }
    default: break;
  }
  throw std::runtime_error(op + ": argument '" + arg + "' has type " + type->str() + ", which JS cannot pass");
}

[[noreturn]] void BadArg(Napi::Env env, const OpEntry& op, const ArgSpec& arg, const std::string& want) {
  throw Napi::TypeError::New(env, op.name + ": argument '" + arg.name + "' expects " + want);
}

// Every device string reaches libtorch through here: say why CUDA is not there, rather than
// libtorch's "Could not run ... with arguments from the 'CUDA' backend" or a driver error.
[[noreturn]] void NoCuda(Napi::Env env, const OpEntry& op, const c10::Device& device) {
  throw Napi::Error::New(env, op.name + ": device '" + device.str() + "' is not available: " + CudaUnavailableReason());
}

int64_t ToInt(Napi::Env env, const OpEntry& op, const ArgSpec& arg, Napi::Value v) {
  if (!v.IsNumber()) BadArg(env, op, arg, "an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d))) BadArg(env, op, arg, "an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

c10::Scalar ToScalar(Napi::Env env, const OpEntry& op, const ArgSpec& arg, Napi::Value v) {
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (!v.IsNumber()) BadArg(env, op, arg, "a number");
  double d = v.As<Napi::Number>().DoubleValue();
  // Integral JS numbers become int Scalars so that integer tensors keep their dtype (x.add(1)).
  if (std::abs(d) < 9007199254740992.0 && d == static_cast<double>(static_cast<int64_t>(d))) {
    return c10::Scalar(static_cast<int64_t>(d));
  }
  return c10::Scalar(d);
}

c10::IValue ToIValue(Napi::Env env, const OpEntry& op, const ArgSpec& arg, Napi::Value v) {
  switch (arg.kind) {
    case Kind::Tensor:
      if (!IsTensor(v)) BadArg(env, op, arg, "a Tensor");
      return UnwrapTensor(v, arg.name.c_str());
    case Kind::Int: return ToInt(env, op, arg, v);
    case Kind::Float:
      if (!v.IsNumber()) BadArg(env, op, arg, "a number");
      return v.As<Napi::Number>().DoubleValue();
    case Kind::Bool:
      if (!v.IsBoolean()) BadArg(env, op, arg, "a boolean");
      return v.As<Napi::Boolean>().Value();
    case Kind::Scalar: return ToScalar(env, op, arg, v);
    case Kind::ScalarType:
      if (!v.IsString()) BadArg(env, op, arg, "a dtype name");
      return ParseDtype(env, v.As<Napi::String>().Utf8Value());
    case Kind::Layout: return c10::kStrided;
    case Kind::MemoryFormat: {
      std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
      if (s == "contiguous") return c10::MemoryFormat::Contiguous;
      if (s == "channels_last") return c10::MemoryFormat::ChannelsLast;
      if (s == "preserve") return c10::MemoryFormat::Preserve;
      BadArg(env, op, arg, "'contiguous', 'channels_last' or 'preserve'");
    }
    case Kind::Device: {
      if (!v.IsString()) BadArg(env, op, arg, "a device string such as 'cpu' or 'cuda:0'");
      c10::Device device(v.As<Napi::String>().Utf8Value());
      if (device.is_cuda() && !at::detail::getCUDAHooks().hasCUDA()) NoCuda(env, op, device);
      return device;
    }
    case Kind::String:
      if (!v.IsString()) BadArg(env, op, arg, "a string");
      return v.As<Napi::String>().Utf8Value();
    case Kind::Generator: BadArg(env, op, arg, "undefined (generators are global; use manualSeed)");
    case Kind::IntList: {
      if (v.IsNumber() && arg.fixed_length > 0) {
        return std::vector<int64_t>(arg.fixed_length, ToInt(env, op, arg, v));
      }
      if (!v.IsArray()) BadArg(env, op, arg, "an array of integers");
      auto a = v.As<Napi::Array>();
      std::vector<int64_t> out(a.Length());
      for (uint32_t i = 0; i < a.Length(); ++i) out[i] = ToInt(env, op, arg, a.Get(i));
      return out;
    }
    case Kind::FloatList: {
      if (!v.IsArray()) BadArg(env, op, arg, "an array of numbers");
      auto a = v.As<Napi::Array>();
      std::vector<double> out(a.Length());
      for (uint32_t i = 0; i < a.Length(); ++i) out[i] = a.Get(i).ToNumber().DoubleValue();
      return out;
    }
    case Kind::BoolList: {
      if (!v.IsArray()) BadArg(env, op, arg, "an array of booleans");
      auto a = v.As<Napi::Array>();
      c10::List<bool> out;
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).ToBoolean().Value());
      return out;
    }
    case Kind::TensorList: {
      if (!v.IsArray()) BadArg(env, op, arg, "an array of Tensors");
      auto a = v.As<Napi::Array>();
      std::vector<at::Tensor> out;
      out.reserve(a.Length());
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(UnwrapTensor(a.Get(i), arg.name.c_str()));
      return out;
    }
    case Kind::OptionalTensorList: {
      if (!v.IsArray()) BadArg(env, op, arg, "an array of Tensors or nulls");
      auto a = v.As<Napi::Array>();
      c10::List<c10::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value e = a.Get(i);
        if (e.IsNull() || e.IsUndefined()) {
          out.push_back(c10::nullopt);
        } else {
          out.push_back(UnwrapTensor(e, arg.name.c_str()));
        }
      }
      return out;
    }
  }
  BadArg(env, op, arg, "a supported value");
}

// op(name, overload) → id for call(); throws naming the operator if libtorch has no such schema.
Napi::Value LookupOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string overload = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  std::string full = overload.empty() ? name : name + "." + overload;
  auto known = g_op_ids.find(full);
  if (known != g_op_ids.end()) return Napi::Number::New(env, static_cast<double>(known->second));
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle) throw Napi::Error::New(env, "unknown operator " + full + " in this libtorch");
  OpEntry entry{full, *handle, {}, handle->schema().returns().size()};
  try {
    for (const auto& a : handle->schema().arguments()) {
      // real_type() keeps ScalarType/Layout/MemoryFormat apart from int, which type() merges.
      const auto& declared = a.real_type();
      bool optional = declared->kind() == c10::TypeKind::OptionalType;
      auto type = optional ? declared->containedType(0) : declared;
      entry.args.push_back({a.name(), KindOf(type, full, a.name()), optional, a.N().value_or(0), a.default_value()});
    }
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  g_ops.push_back(std::move(entry));
  g_op_ids[full] = g_ops.size() - 1;
  return Napi::Number::New(env, static_cast<double>(g_ops.size() - 1));
}

// call(id, ...args): positional arguments; undefined (or omitted trailing ones) take the schema default.
Napi::Value CallOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id >= g_ops.size()) throw Napi::RangeError::New(env, "bad operator id");
  const OpEntry& op = g_ops[id];
  const size_t given = info.Length() - 1;
  if (given > op.args.size()) {
    throw Napi::TypeError::New(env, op.name + ": " + std::to_string(given) + " arguments given, at most " +
                                        std::to_string(op.args.size()) + " expected");
  }
  std::vector<c10::IValue> stack;
  stack.reserve(op.args.size());
  for (size_t i = 0; i < op.args.size(); ++i) {
    const ArgSpec& arg = op.args[i];
    Napi::Value v = i < given ? info[i + 1] : env.Undefined();
    if (v.IsUndefined() || (v.IsNull() && arg.optional)) {
      if (arg.default_value) {
        stack.push_back(*arg.default_value);
      } else if (arg.optional) {
        stack.emplace_back();
      } else {
        throw Napi::TypeError::New(env, op.name + ": missing argument '" + arg.name + "'");
      }
      continue;
    }
    stack.push_back(ToIValue(env, op, arg, v));
  }
  try {
    op.handle.callBoxed(&stack);
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
  if (op.num_returns == 0) return env.Undefined();
  if (op.num_returns == 1) return IValueToJs(env, stack[0]);
  auto out = Napi::Array::New(env, op.num_returns);
  for (size_t i = 0; i < op.num_returns; ++i) out.Set(i, IValueToJs(env, stack[i]));
  return out;
}

// The schema text of an operator (for error messages and `arcface doctor`).
Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id >= g_ops.size()) throw Napi::RangeError::New(info.Env(), "bad operator id");
  std::ostringstream s;
  s << g_ops[id].handle.schema();
  return Napi::String::New(info.Env(), s.str());
}

}  // namespace

void InitDispatch(Napi::Env env, Napi::Object exports) {
  exports.Set("op", Napi::Function::New(env, LookupOp));
  exports.Set("call", Napi::Function::New(env, CallOp));
  exports.Set("opSchema", Napi::Function::New(env, OpSchema));
}

}  // namespace arcface
