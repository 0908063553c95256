// Vectorised row loops of the Partial FC kernel (declared in rows.h). The addon is built for
// baseline x86-64, where these loops would stay scalar; here each is compiled three times (AVX-512,
// AVX2, baseline) and the CPU picks one when the addon loads. Reductions and selects are written
// with GCC vector types (64 bytes: 16 floats / 8 doubles; lowered to narrower registers where
// needed), so the results do not depend on the compiler reassociating anything. exp is a
// vectorised Cephes expf (within 2 ulp; underflow below e⁻⁸⁷·³ gives 0).
#include "heads/partial_fc/rows.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#pragma GCC optimize("O3")
#pragma GCC diagnostic ignored "-Wpsabi"  // vector-typed helpers are always inlined (below)

#if defined(__x86_64__)
#define PFC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PFC_CLONES
#endif

// Helpers take and return 64-byte vectors: they must be inlined into each clone (a call would
// cross between vector ABIs).
#define PFC_INLINE inline __attribute__((always_inline))

namespace arcface::pfc::rows {

namespace {

template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(64)));
  typedef int32_t I __attribute__((vector_size(64)));
  typedef uint8_t Bytes __attribute__((vector_size(16)));
  static constexpr int kLanes = 16;
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(64)));
  typedef int64_t I __attribute__((vector_size(64)));
  typedef uint8_t Bytes __attribute__((vector_size(8)));
  static constexpr int kLanes = 8;
};

template <typename T>
PFC_INLINE typename Simd<T>::V VLoad(const T* p) {
  typename Simd<T>::V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
PFC_INLINE void VStore(T* p, typename Simd<T>::V v) {
  std::memcpy(p, &v, sizeof v);
}

template <typename T, typename V>
PFC_INLINE T SumLanes(V v) {
  T s = 0;
  for (int q = 0; q < Simd<T>::kLanes; ++q) s += v[q];
  return s;
}

template <typename T>
PFC_INLINE typename Simd<T>::V Splat(T x) {
  return typename Simd<T>::V{} + x;
}

// mask ? a : b, lane by lane (mask lanes all ones or zero), with bit operations: vector ?: is
// lowered lane by lane with branches by this GCC.
template <typename V, typename I>
PFC_INLINE V Select(I mask, V a, V b) {
  return (V)(((I)a & mask) | ((I)b & ~mask));
}

// exp(x) for 16 floats: x = n·ln2 + z, e^z by polynomial, 2^n through the exponent bits.
PFC_INLINE Simd<float>::V ExpV(Simd<float>::V x) {
  using V = Simd<float>::V;
  using I = Simd<float>::I;
  const V t = x * 1.44269504088896341f + 0.5f;
  I n = __builtin_convertvector(t, I);          // truncation …
  n += (__builtin_convertvector(n, V) > t);     // … to floor (comparisons give −1 where true)
  const V fn = __builtin_convertvector(n, V);
  const V z = x - fn * 0.693359375f - fn * -2.12194440e-4f;
  V y = Splat(1.9875691500e-4f);
  y = y * z + 1.3981999507e-3f;
  y = y * z + 8.3334519073e-3f;
  y = y * z + 4.1665795894e-2f;
  y = y * z + 1.6666665459e-1f;
  y = y * z + 5.0000001201e-1f;
  y = y * z * z + z + 1.0f;
  const V scale = (V)((n + 127) << 23);
  return Select(x < -87.3f, V{}, y * scale);
}

PFC_INLINE float ExpScalar(float x) {
  Simd<float>::V v{};
  v[0] = x;
  return ExpV(v)[0];
}

}  // namespace

template <typename acc_t, typename store_t>
PFC_CLONES void Convert(const store_t* __restrict src, acc_t* __restrict dst, int64_t n) {
  for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<acc_t>(src[k]);
}

template <typename acc_t, typename store_t>
PFC_CLONES acc_t Load(const store_t* __restrict src, acc_t* __restrict dst, int64_t n) {
  using V = typename Simd<acc_t>::V;
  constexpr int L = Simd<acc_t>::kLanes;
  for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<acc_t>(src[k]);
  V acc{};
  int64_t k = 0;
  for (; k + L <= n; k += L) {
    const V v = VLoad(dst + k);
    acc += v * v;
  }
  acc_t ss = SumLanes<acc_t>(acc);
  for (; k < n; ++k) ss += dst[k] * dst[k];
  return std::sqrt(ss);
}

template <typename acc_t>
PFC_CLONES void Scale(acc_t* __restrict x, acc_t a, int64_t n) {
  for (int64_t k = 0; k < n; ++k) x[k] *= a;
}

template <typename acc_t>
PFC_CLONES acc_t MarginRow(acc_t* __restrict x, uint8_t* __restrict zero, int64_t n, acc_t s, acc_t threshold) {
  using V = typename Simd<acc_t>::V;
  using I = typename Simd<acc_t>::I;
  constexpr int L = Simd<acc_t>::kLanes;
  const acc_t limit = threshold > 0 ? threshold : std::numeric_limits<acc_t>::infinity();  // 0: no filtering
  const V lo = Splat<acc_t>(-1), hi = Splat<acc_t>(1), zeros{};
  V vmax = Splat(-std::numeric_limits<acc_t>::infinity());
  int64_t k = 0;
  for (; k + L <= n; k += L) {
    const V c = VLoad(x + k);
    const I below = c < lo, above = c > hi;
    const V clamped = Select(below, lo, Select(above, hi, c));
    const I filtered = clamped > limit;
    const I marked = below | above | filtered;
    const V v = Select(filtered, zeros, clamped) * s;
    VStore(x + k, v);
    vmax = Select(vmax > v, vmax, v);
    const typename Simd<acc_t>::Bytes flags = __builtin_convertvector(marked, typename Simd<acc_t>::Bytes);  // 0xff / 0
    std::memcpy(zero + k, &flags, sizeof flags);
  }
  acc_t max = vmax[0];
  for (int q = 1; q < L; ++q) max = std::max(max, vmax[q]);
  for (; k < n; ++k) {
    const acc_t c = x[k], clamped = std::min(std::max(c, acc_t(-1)), acc_t(1));
    const bool filtered = clamped > limit;
    zero[k] = static_cast<uint8_t>(c < -1 || c > 1 || filtered);
    x[k] = (filtered ? acc_t(0) : clamped) * s;
    max = std::max(max, x[k]);
  }
  return max;
}

template <typename acc_t, typename buf_t>
PFC_CLONES double ExpRow(const acc_t* x, const uint8_t* __restrict zero, buf_t* out, int64_t n, acc_t max) {
  double sum = 0;
  int64_t k = 0;
  if constexpr (std::is_same_v<acc_t, float>) {
    using V = Simd<float>::V;
    typedef double D __attribute__((vector_size(64)));
    D lo_sum{}, hi_sum{};
    for (; k + 16 <= n; k += 16) {
      V e = ExpV(VLoad(x + k) - max);
      lo_sum += __builtin_convertvector(__builtin_shufflevector(e, e, 0, 1, 2, 3, 4, 5, 6, 7), D);
      hi_sum += __builtin_convertvector(__builtin_shufflevector(e, e, 8, 9, 10, 11, 12, 13, 14, 15), D);
      Simd<float>::Bytes flags;
      std::memcpy(&flags, zero + k, sizeof flags);
      e = Select(__builtin_convertvector(flags, Simd<float>::I) != 0, -e, e);
      if constexpr (std::is_same_v<buf_t, float>) {
        VStore(out + k, e);
      } else {
        for (int q = 0; q < 16; ++q) out[k + q] = static_cast<buf_t>(e[q]);  // rounding keeps the sign
      }
    }
    sum = SumLanes<double>(lo_sum + hi_sum);
    for (; k < n; ++k) {
      const float e = ExpScalar(x[k] - max);
      sum += e;
      out[k] = static_cast<buf_t>(zero[k] ? -e : e);
    }
  } else {
    for (; k < n; ++k) {
      const acc_t e = std::exp(x[k] - max);
      sum += e;
      out[k] = static_cast<buf_t>(zero[k] ? -e : e);
    }
  }
  return sum;
}

template <typename acc_t, typename buf_t>
PFC_CLONES void GradRow(const buf_t* e, acc_t* g, int64_t n, acc_t factor) {
  using V = typename Simd<acc_t>::V;
  using I = typename Simd<acc_t>::I;
  constexpr int L = Simd<acc_t>::kLanes;
  int64_t k = 0;
  for (; k + L <= n; k += L) {
    acc_t block[L];
    for (int q = 0; q < L; ++q) block[q] = static_cast<acc_t>(e[k + q]);
    const V v = VLoad(block);
    VStore(g + k, Select((I)v < 0, V{}, v * factor));  // sign bit set: no gradient
  }
  for (; k < n; ++k) g[k] = std::signbit(static_cast<acc_t>(e[k])) ? acc_t(0) : static_cast<acc_t>(e[k]) * factor;
}

template <typename acc_t, typename store_t>
PFC_CLONES void NormalizeBackward(const store_t* __restrict w, acc_t* __restrict g, int64_t n, acc_t norm) {
  using V = typename Simd<acc_t>::V;
  constexpr int L = Simd<acc_t>::kLanes;
  const acc_t inv = acc_t(1) / norm;
  acc_t wk[L];
  V acc{};
  int64_t k = 0;
  for (; k + L <= n; k += L) {
    for (int q = 0; q < L; ++q) wk[q] = static_cast<acc_t>(w[k + q]);
    acc += VLoad(wk) * inv * VLoad(g + k);
  }
  acc_t dot = SumLanes<acc_t>(acc);
  for (; k < n; ++k) dot += static_cast<acc_t>(w[k]) * inv * g[k];
  for (k = 0; k < n; ++k) g[k] = (g[k] - static_cast<acc_t>(w[k]) * inv * dot) * inv;
}

template <typename acc_t, typename store_t>
PFC_CLONES void SgdRow(store_t* __restrict w, store_t* __restrict buf, const acc_t* __restrict g, int64_t n, acc_t lr, acc_t mu,
                       acc_t wd) {
  if (buf) {
    for (int64_t k = 0; k < n; ++k) {
      const acc_t p = static_cast<acc_t>(w[k]);
      const acc_t b = static_cast<acc_t>(buf[k]) * mu + (g[k] + wd * p);
      buf[k] = static_cast<store_t>(b);
      w[k] = static_cast<store_t>(p - lr * b);
    }
  } else {
    for (int64_t k = 0; k < n; ++k) {
      const acc_t p = static_cast<acc_t>(w[k]);
      w[k] = static_cast<store_t>(p - lr * (g[k] + wd * p));
    }
  }
}

template <typename acc_t, typename store_t>
PFC_CLONES void AdamwRow(store_t* __restrict w, store_t* __restrict m, store_t* __restrict v, const acc_t* __restrict g, int64_t n,
                         const AdamwRowParams& o) {
  const acc_t decay = static_cast<acc_t>(o.decay), b1 = static_cast<acc_t>(o.beta1), a1 = static_cast<acc_t>(o.one_minus_beta1);
  const acc_t b2 = static_cast<acc_t>(o.beta2), a2 = static_cast<acc_t>(o.one_minus_beta2);
  const acc_t step_size = static_cast<acc_t>(o.step_size), bc2_sqrt = static_cast<acc_t>(o.bc2_sqrt), eps = static_cast<acc_t>(o.eps);
  for (int64_t k = 0; k < n; ++k) {
    const acc_t gk = g[k];
    const acc_t mk = static_cast<acc_t>(m[k]) * b1 + a1 * gk;
    const acc_t vk = static_cast<acc_t>(v[k]) * b2 + a2 * gk * gk;
    m[k] = static_cast<store_t>(mk);
    v[k] = static_cast<store_t>(vk);
    w[k] = static_cast<store_t>(static_cast<acc_t>(w[k]) * decay - step_size * (mk / (std::sqrt(vk) / bc2_sqrt + eps)));
  }
}

#define PFC_STORAGE(acc_t, store_t)                                                                      \
  template acc_t Load<acc_t, store_t>(const store_t*, acc_t*, int64_t);                                 \
  template void Convert<acc_t, store_t>(const store_t*, acc_t*, int64_t);                               \
  template void NormalizeBackward<acc_t, store_t>(const store_t*, acc_t*, int64_t, acc_t);              \
  template void SgdRow<acc_t, store_t>(store_t*, store_t*, const acc_t*, int64_t, acc_t, acc_t, acc_t); \
  template void AdamwRow<acc_t, store_t>(store_t*, store_t*, store_t*, const acc_t*, int64_t, const AdamwRowParams&); \
  template double ExpRow<acc_t, store_t>(const acc_t*, const uint8_t*, store_t*, int64_t, acc_t);                       \
  template void GradRow<acc_t, store_t>(const store_t*, acc_t*, int64_t, acc_t);
PFC_STORAGE(float, float)
PFC_STORAGE(float, c10::BFloat16)
PFC_STORAGE(float, c10::Half)
PFC_STORAGE(double, double)

#define PFC_MATH(acc_t)                                                     \
  template void Scale<acc_t>(acc_t*, acc_t, int64_t);                       \
  template acc_t MarginRow<acc_t>(acc_t*, uint8_t*, int64_t, acc_t, acc_t);
PFC_MATH(float)
PFC_MATH(double)

}  // namespace arcface::pfc::rows
