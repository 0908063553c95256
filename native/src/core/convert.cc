// Conversions shared by the addon: dtype names, libtorch values to JS, and C++ errors to JS errors.
#include "core/common.h"

#include <c10/util/Exception.h>

namespace arcface {

namespace {
struct DtypeEntry {
  const char* name;
  c10::ScalarType type;
};
const DtypeEntry kDtypes[] = {
    {"float32", c10::kFloat}, {"float64", c10::kDouble}, {"float16", c10::kHalf}, {"bfloat16", c10::kBFloat16},
    {"int64", c10::kLong},    {"int32", c10::kInt},      {"int16", c10::kShort},  {"int8", c10::kChar},
    {"uint8", c10::kByte},    {"bool", c10::kBool},
};
}  // namespace

c10::ScalarType ParseDtype(Napi::Env env, const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.type;
  }
  throw Napi::TypeError::New(env, "unknown dtype '" + name +
                                      "' (expected float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8 or bool)");
}

const char* DtypeName(c10::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (type == d.type) return d.name;
  }
  return c10::toString(type);
}

void ThrowAsJs(Napi::Env env, const std::exception& e) {
  if (const auto* napi_error = dynamic_cast<const Napi::Error*>(&e)) throw *napi_error;
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    throw Napi::Error::New(env, c10_error->what_without_backtrace());
  }
  throw Napi::Error::New(env, e.what());
}

Napi::Value IValueToJs(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) {
    const auto& t = v.toTensor();
    if (!t.defined()) return env.Undefined();
    return WrapTensor(env, t);
  }
  if (v.isNone()) return env.Undefined();
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isScalar()) {
    auto s = v.toScalar();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    if (s.isIntegral(false)) return Napi::Number::New(env, static_cast<double>(s.toLong()));
    return Napi::Number::New(env, s.toDouble());
  }
  if (v.isTuple()) {
    const auto& elements = v.toTupleRef().elements();
    auto out = Napi::Array::New(env, elements.size());
    for (size_t i = 0; i < elements.size(); ++i) out.Set(i, IValueToJs(env, elements[i]));
    return out;
  }
  if (v.isList()) {
    auto list = v.toListRef();
    auto out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) out.Set(i, IValueToJs(env, list[i]));
    return out;
  }
  throw Napi::TypeError::New(env, std::string("cannot return a value of type ") + v.tagKind() + " to JS");
}

}  // namespace arcface
