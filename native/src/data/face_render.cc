// The generated-faces renderer (see face_render.h). Pixels are shaded one by one: the pixel is
// mapped into the face's own frame (undoing roll, scale and shift, then yaw and pitch on a
// cylinder so that features slide over the head as it turns), and layers are composited back to
// front with antialiased edges. Identity traits and per-image variation come from separate random
// streams, so an identity looks the same in every image except for what the image varies.
#include "data/face_render.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

#include "data/image_augment.h"

namespace arcface {

namespace {

struct Rgb {
  float r, g, b;
};

Rgb Mix(Rgb a, Rgb b, float t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }
Rgb Scale(Rgb a, float s) { return {a.r * s, a.g * s, a.b * s}; }

float Clamp01(float x) { return std::min(1.f, std::max(0.f, x)); }

float IntPow(float x, int p) {
  float r = x;
  for (int i = 1; i < p; ++i) r *= x;
  return r;
}

// Coverage of a shape from an approximate signed distance in pixels (negative inside).
float Cover(float distance) { return Clamp01(0.5f - distance); }

// Approximate signed distance to an axis-aligned ellipse, in the units of x and y.
float EllipseDistance(float x, float y, float a, float b) {
  const float f = (x * x) / (a * a) + (y * y) / (b * b) - 1.f;
  const float gx = x / (a * a), gy = y / (b * b);
  const float grad = 2.f * std::sqrt(gx * gx + gy * gy);
  return f / std::max(grad, 1e-3f);
}

Rgb Pick(Rng& rng, std::initializer_list<Rgb> palette) {
  const size_t i = static_cast<size_t>(rng.Uniform() * palette.size());
  return *(palette.begin() + std::min(i, palette.size() - 1));
}

Rgb Jitter(Rng& rng, Rgb c, float amount) {
  return {c.r + float(rng.Normal()) * amount, c.g + float(rng.Normal()) * amount, c.b + float(rng.Normal()) * amount};
}

// What stays the same in every image of an identity. Lengths are in pixels of the 112×112 frame,
// measured from the midpoint between the eyes (x right, y down).
struct Identity {
  float face_a, face_b, face_y, jaw;
  int squareness;  // exponent of the face's superellipse: 2 (oval) to 4 (square)
  Rgb skin;
  float blush;
  float blob_x[3], blob_y[3], blob_r[3], blob_shade[3];  // skin tone variations
  Rgb hair;
  float hairline, hair_curve, hair_volume, hair_length, part, strand_freq;
  bool bald;
  float eye_x, eye_a, eye_b, eye_tilt;
  Rgb iris;
  float brow_y, brow_width, brow_arch, brow_thick, brow_tilt;
  float nose_y, nose_width, nose_length;
  float mouth_y, mouth_width, lip_top, lip_bottom;
  Rgb lips;
  bool beard, moustache;
  float beard_density;
  bool glasses;
  Rgb glasses_color;
  float glasses_r;
  int moles;
  float mole_x[4], mole_y[4], mole_r[4];
  float ear_y, ear_size;
};

// What one image changes.
struct Variation {
  float roll, scale, shift_x, shift_y, yaw, pitch;
  float gaze_x, gaze_y, openness, smile, mouth_open;
  float ambient, light_x, light_y, exposure;
  Rgb cast;
  Rgb background[2];
  float bg_angle, bg_freq, bg_phase, bg_amp;
  Rgb clothes;
  bool wear_glasses;
  int occluder;  // 0 none, 1 sunglasses, 2 mask, 3 bar, 4 hat
  Rgb occluder_color;
  float bar_angle, bar_offset, bar_width, hat_y;
  float noise, blur;
};

Identity MakeIdentity(Rng& rng) {
  Identity id;
  id.face_a = float(rng.Uniform(33, 42));
  id.face_b = float(rng.Uniform(47, 58));
  id.face_y = float(rng.Uniform(10, 17));
  id.jaw = float(rng.Uniform(0.0, 0.45));
  id.squareness = 2 + static_cast<int>(rng.Uniform(0, 2.99));
  const float tone = float(rng.Uniform());
  id.skin = Jitter(rng, Mix(Rgb{236, 200, 178}, Rgb{96, 62, 44}, tone), 8);
  id.blush = float(rng.Uniform(0, 0.35));
  for (int i = 0; i < 3; ++i) {
    id.blob_x[i] = float(rng.Uniform(-30, 30));
    id.blob_y[i] = float(rng.Uniform(-25, 50));
    id.blob_r[i] = float(rng.Uniform(6, 16));
    id.blob_shade[i] = float(rng.Uniform(-0.12, 0.12));
  }
  id.hair = Jitter(rng, Pick(rng, {{25, 20, 18}, {60, 40, 28}, {110, 75, 45}, {180, 140, 90}, {150, 60, 30}, {160, 160, 160}}), 10);
  id.bald = rng.Coin(0.08);
  id.hairline = float(rng.Uniform(-34, -20));
  id.hair_curve = float(rng.Uniform(-6, 8));
  id.hair_volume = float(rng.Uniform(3, 12));
  id.hair_length = float(rng.Uniform(0, 1)) < 0.35f ? float(rng.Uniform(30, 80)) : float(rng.Uniform(-10, 10));
  id.part = float(rng.Uniform(-15, 15));
  id.strand_freq = float(rng.Uniform(0.6, 1.6));
  id.eye_x = float(rng.Uniform(15.5, 19.5));
  id.eye_a = float(rng.Uniform(4.8, 7.0));
  id.eye_b = float(rng.Uniform(2.0, 3.4));
  id.eye_tilt = float(rng.Uniform(-0.15, 0.15));
  id.iris = Jitter(rng, Pick(rng, {{60, 40, 25}, {100, 70, 40}, {70, 110, 150}, {80, 120, 80}, {40, 30, 25}}), 12);
  id.brow_y = float(rng.Uniform(-12, -7));
  id.brow_width = float(rng.Uniform(7, 11));
  id.brow_arch = float(rng.Uniform(0, 3.5));
  id.brow_thick = float(rng.Uniform(1.0, 3.0));
  id.brow_tilt = float(rng.Uniform(-0.2, 0.2));
  id.nose_y = float(rng.Uniform(17, 24));
  id.nose_width = float(rng.Uniform(5.5, 10));
  id.nose_length = float(rng.Uniform(12, 20));
  id.mouth_y = float(rng.Uniform(36, 44));
  id.mouth_width = float(rng.Uniform(11, 17));
  id.lip_top = float(rng.Uniform(1.2, 3.0));
  id.lip_bottom = float(rng.Uniform(1.5, 3.8));
  id.lips = Jitter(rng, Mix(Rgb{200, 110, 110}, Rgb{110, 60, 55}, tone), 10);
  id.beard = rng.Coin(0.2);
  id.moustache = rng.Coin(0.25);
  id.beard_density = float(rng.Uniform(0.4, 0.95));
  id.glasses = rng.Coin(0.18);
  id.glasses_color = Pick(rng, {{20, 20, 20}, {120, 80, 40}, {180, 180, 190}, {140, 30, 30}});
  id.glasses_r = float(rng.Uniform(7.5, 10));
  id.moles = static_cast<int>(rng.Uniform(0, 4.99));
  for (int i = 0; i < 4; ++i) {
    id.mole_x[i] = float(rng.Uniform(-28, 28));
    id.mole_y[i] = float(rng.Uniform(-15, 55));
    id.mole_r[i] = float(rng.Uniform(0.8, 1.8));
  }
  id.ear_y = float(rng.Uniform(4, 14));
  id.ear_size = float(rng.Uniform(0.8, 1.2));
  return id;
}

Variation MakeVariation(Rng& rng, const Identity& id) {
  Variation v;
  v.roll = float(std::max(-0.3, std::min(0.3, rng.Normal() * 0.1)));
  v.scale = float(rng.Uniform(0.9, 1.1));
  v.shift_x = float(rng.Normal() * 2.5);
  v.shift_y = float(rng.Normal() * 2.5);
  v.yaw = float(rng.Uniform(-0.55, 0.55));
  v.pitch = float(rng.Uniform(-0.25, 0.25));
  v.gaze_x = float(rng.Uniform(-1.5, 1.5));
  v.gaze_y = float(rng.Uniform(-0.8, 0.8));
  v.openness = rng.Coin(0.1) ? float(rng.Uniform(0.05, 0.4)) : float(rng.Uniform(0.75, 1.15));
  v.smile = float(rng.Uniform(-0.5, 1.5));
  v.mouth_open = rng.Coin(0.3) ? float(rng.Uniform(1, 5)) : 0.f;
  v.ambient = float(rng.Uniform(0.35, 0.75));
  const double light_angle = rng.Uniform(0, 2 * M_PI), light_spread = rng.Uniform(0.2, 0.9);
  v.light_x = float(std::cos(light_angle) * light_spread);
  v.light_y = float(std::sin(light_angle) * light_spread);
  v.exposure = float(rng.Uniform(0.65, 1.3));
  v.cast = {float(rng.Uniform(0.88, 1.12)), float(rng.Uniform(0.92, 1.08)), float(rng.Uniform(0.85, 1.15))};
  for (Rgb& c : v.background) c = {float(rng.Uniform(20, 235)), float(rng.Uniform(20, 235)), float(rng.Uniform(20, 235))};
  v.bg_angle = float(rng.Uniform(0, 2 * M_PI));
  v.bg_freq = float(rng.Uniform(0.02, 0.3));
  v.bg_phase = float(rng.Uniform(0, 2 * M_PI));
  v.bg_amp = float(rng.Uniform(0, 40));
  v.clothes = {float(rng.Uniform(10, 240)), float(rng.Uniform(10, 240)), float(rng.Uniform(10, 240))};
  v.wear_glasses = id.glasses && rng.Coin(0.85);
  const double o = rng.Uniform();
  v.occluder = o < 0.07 ? 1 : o < 0.13 ? 2 : o < 0.21 ? 3 : o < 0.27 ? 4 : 0;
  v.occluder_color = {float(rng.Uniform(0, 255)), float(rng.Uniform(0, 255)), float(rng.Uniform(0, 255))};
  v.bar_angle = float(rng.Uniform(0, M_PI));
  v.bar_offset = float(rng.Uniform(-30, 30));
  v.bar_width = float(rng.Uniform(6, 18));
  v.hat_y = float(rng.Uniform(-22, -8));
  v.noise = float(rng.Uniform(1, 9));
  v.blur = rng.Coin(0.25) ? float(rng.Uniform(0.5, 1.4)) : 0.f;
  return v;
}

class Painter {
 public:
  Painter(const Identity& id, const Variation& v)
      : id_(id), v_(v), roll_cos_(std::cos(-v.roll)), roll_sin_(std::sin(-v.roll)), bg_cos_(std::cos(v.bg_angle)),
        bg_sin_(std::sin(v.bg_angle)), yaw_cos_(std::cos(v.yaw)), yaw_sin_(std::sin(v.yaw)), pitch_cos_(std::cos(v.pitch)),
        pitch_sin_(std::sin(v.pitch)), light_z_(std::sqrt(std::max(0.f, 1.f - v.light_x * v.light_x - v.light_y * v.light_y))) {}

  // Colour of the pixel whose centre is at (px, py) in image coordinates.
  Rgb Shade(float px, float py) const {
    // image → head frame: undo shift, roll and scale about the eye midpoint (56, 52)
    const float dx = px - 56.f - v_.shift_x, dy = py - 52.f - v_.shift_y;
    const float hx = (roll_cos_ * dx - roll_sin_ * dy) / v_.scale, hy = (roll_sin_ * dx + roll_cos_ * dy) / v_.scale;
    const float px_per_unit = v_.scale;

    Rgb color = Background(px, py);
    color = Clothes(color, hx, hy, px_per_unit);
    color = HairBack(color, hx, hy, px_per_unit);
    color = Ears(color, hx, hy, px_per_unit);

    // the face silhouette turns a little with the head; its inside is shaded as an ellipsoid
    const float sx = hx - v_.yaw * id_.face_a * 0.25f;
    const float fy = hy - id_.face_y;
    const float jaw = std::max(0.f, fy / id_.face_b);
    const float width = id_.face_a * (1.f - id_.jaw * jaw * jaw);
    // |x|^p + |y|^p − 1 ≈ p·(r − 1) near the edge: a distance without the p-th root
    const float level = IntPow(std::abs(sx) / width, id_.squareness) + IntPow(std::abs(fy) / id_.face_b, id_.squareness) - 1.f;
    const float face_cover = Cover(level / id_.squareness * std::min(width, id_.face_b) * px_per_unit);
    if (face_cover > 0.f) {
      // frontal coordinates: where on the (unturned) face this pixel lies, turning the point back by
      // the yaw on a vertical cylinder and by the pitch on a horizontal one: R·sin(asin(u) − angle)
      const float ux = std::max(-1.f, std::min(1.f, sx / (id_.face_a * 1.15f)));
      const float fx = id_.face_a * 1.15f * (ux * yaw_cos_ - std::sqrt(1.f - ux * ux) * yaw_sin_);
      const float uy = std::max(-1.f, std::min(1.f, fy / (id_.face_b * 1.3f)));
      const float ffy = id_.face_b * 1.3f * (uy * pitch_cos_ - std::sqrt(1.f - uy * uy) * pitch_sin_) + id_.face_y;
      Rgb skin = Skin(fx, ffy);
      skin = Features(skin, fx, ffy, px_per_unit);
      // Lambert shading with the normal of an ellipsoid over the silhouette
      const float nx = sx / width, ny = fy / id_.face_b;
      const float nz = std::sqrt(std::max(0.f, 1.f - nx * nx - ny * ny));
      const float lambert = std::max(0.f, nx * v_.light_x + ny * v_.light_y + nz * light_z_);
      skin = Scale(skin, v_.ambient + (1.f - v_.ambient) * 1.25f * lambert);
      color = Mix(color, skin, face_cover);
    }
    color = HairFront(color, hx, hy, px_per_unit);
    color = Occluders(color, hx, hy, px_per_unit);
    return {color.r * v_.exposure * v_.cast.r, color.g * v_.exposure * v_.cast.g, color.b * v_.exposure * v_.cast.b};
  }

 private:
  Rgb Background(float px, float py) const {
    const float t = Clamp01((px * bg_cos_ + py * bg_sin_) / 160.f + 0.5f);
    Rgb c = Mix(v_.background[0], v_.background[1], t);
    const float wave = v_.bg_amp * std::sin(v_.bg_freq * (px * bg_sin_ - py * bg_cos_) + v_.bg_phase);
    return {c.r + wave, c.g + wave, c.b + wave};
  }

  Rgb Clothes(Rgb color, float x, float y, float k) const {
    // neck, then shoulders in this image's clothes
    const float neck = Cover((std::abs(x) - id_.face_a * 0.55f) * k) * Cover((id_.face_y + id_.face_b * 0.5f - y) * k);
    color = Mix(color, Scale(id_.skin, 0.8f), neck);
    const float shoulders_top = id_.face_y + id_.face_b + 2.f + std::abs(x) * 0.35f;
    const float collar = std::abs(x) < 10.f ? 6.f - std::abs(x) * 0.6f : 0.f;
    return Mix(color, v_.clothes, Cover((shoulders_top + collar - y) * k));
  }

  Rgb Hair(float x, float y) const {
    const float strands = 1.f + 0.1f * std::sin((x - id_.part) * id_.strand_freq + 0.15f * y);
    return Scale(id_.hair, strands);
  }

  Rgb HairBack(Rgb color, float x, float y, float k) const {
    if (id_.bald || id_.hair_length <= 0.f) return color;
    // long hair falling behind the face, beside the neck
    const float a = id_.face_a + id_.hair_volume, b = id_.face_b * 0.6f + id_.hair_length * 0.5f;
    const float cy = id_.face_y - id_.face_b * 0.3f + b * 0.5f;
    const float cover = Cover(EllipseDistance(x - v_.yaw * 4.f, y - cy, a, b) * k);
    return cover > 0.f ? Mix(color, Scale(Hair(x, y), 0.85f), cover) : color;
  }

  Rgb Ears(Rgb color, float x, float y, float k) const {
    // an ear shows more as the head turns away from it
    for (int side = -1; side <= 1; side += 2) {
      const float ex = side * (id_.face_a * (1.f - 0.25f * side * v_.yaw)) + v_.yaw * id_.face_a * 0.25f;
      const float d = EllipseDistance(x - ex, y - id_.ear_y, 5.f * id_.ear_size, 9.f * id_.ear_size);
      color = Mix(color, Scale(id_.skin, 0.85f), Cover(d * k));
    }
    return color;
  }

  Rgb Skin(float x, float y) const {
    float shade = 1.f;
    for (int i = 0; i < 3; ++i) {
      const float dx = x - id_.blob_x[i], dy = y - id_.blob_y[i];
      const float q = (dx * dx + dy * dy) / (2 * id_.blob_r[i] * id_.blob_r[i]);
      if (q < 8.f) shade += id_.blob_shade[i] * std::exp(-q);
    }
    Rgb c = Scale(id_.skin, shade);
    for (int side = -1; side <= 1; side += 2) {
      const float dx = x - side * (id_.eye_x + 3.f), dy = y - id_.nose_y;
      const float q = (dx * dx + dy * dy) / 80.f;
      if (q < 8.f) c = Mix(c, Rgb{210, 90, 90}, id_.blush * std::exp(-q));
    }
    return c;
  }

  Rgb Features(Rgb c, float x, float y, float k) const {
    // facial hair under everything else of the lower face
    if (id_.beard && y > id_.nose_y + 6.f) {
      const float fade = Clamp01((y - id_.nose_y - 6.f) / 6.f);
      c = Mix(c, Hair(x, y), fade * id_.beard_density);
    }
    if (id_.moustache && std::abs(y - id_.mouth_y) < 10.f) {
      const float cover = Cover(EllipseDistance(x, y - (id_.mouth_y - id_.lip_top - 3.5f), id_.mouth_width * 0.95f, 2.6f) * k);
      if (cover > 0.f) c = Mix(c, Hair(x, y), cover * id_.beard_density);
    }
    for (int i = 0; i < id_.moles; ++i) {
      if (std::abs(x - id_.mole_x[i]) > 3.f || std::abs(y - id_.mole_y[i]) > 3.f) continue;
      c = Mix(c, Rgb{70, 45, 35}, Cover((std::hypot(x - id_.mole_x[i], y - id_.mole_y[i]) - id_.mole_r[i]) * k));
    }
    c = Nose(c, x, y, k);
    c = Mouth(c, x, y, k);
    for (int side = -1; side <= 1; side += 2) {
      c = Eye(c, side, x, y, k);
      c = Brow(c, side, x, y, k);
      if (v_.wear_glasses) c = GlassesRim(c, side, x, y, k);
    }
    if (v_.wear_glasses && std::abs(x) < id_.eye_x - id_.glasses_r + 1.f) {
      c = Mix(c, id_.glasses_color, Cover((std::abs(y + 1.f) - 0.8f) * k));
    }
    return c;
  }

  Rgb Eye(Rgb c, int side, float x, float y, float k) const {
    const float ex = x - side * id_.eye_x;
    if (std::abs(ex) > id_.eye_a + 3.f || std::abs(y) > 9.f) return c;
    const float ey = y + side * ex * id_.eye_tilt;
    const float b = id_.eye_b * v_.openness;
    // upper lid line, then the eye white, iris and pupil inside the opening
    const float lid = EllipseDistance(ex, ey + 0.6f, id_.eye_a + 0.8f, std::max(b, 0.3f) + 1.2f);
    c = Mix(c, Scale(id_.skin, 0.55f), Cover(lid * k) * (ey < 0.5f ? 0.8f : 0.25f));
    if (b < 0.35f) return c;
    const float inside = Cover(EllipseDistance(ex, ey, id_.eye_a, b) * k);
    if (inside <= 0.f) return c;
    Rgb e{235, 232, 225};
    const float ix = ex - v_.gaze_x, iy = ey - v_.gaze_y;
    const float iris_r = id_.eye_b * 1.05f;
    e = Mix(e, id_.iris, Cover((std::hypot(ix, iy) - iris_r) * k));
    e = Mix(e, Rgb{15, 12, 12}, Cover((std::hypot(ix, iy) - iris_r * 0.42f) * k));
    return Mix(c, e, inside);
  }

  Rgb Brow(Rgb c, int side, float x, float y, float k) const {
    const float bx = x - side * (id_.eye_x + 0.5f);
    if (std::abs(bx) > id_.brow_width + 2.f || y > 0.f || y < -22.f) return c;
    const float t = bx / id_.brow_width;
    const float centre = id_.brow_y - id_.brow_arch * (1.f - t * t) + side * bx * id_.brow_tilt - v_.smile * 0.3f;
    const float taper = id_.brow_thick * (1.f - 0.5f * std::max(0.f, side * t));
    const float d = std::max(std::abs(y - centre) - taper * 0.5f, std::abs(bx) - id_.brow_width);
    return Mix(c, Scale(id_.hair, 0.7f), Cover(d * k) * 0.9f);
  }

  Rgb GlassesRim(Rgb c, int side, float x, float y, float k) const {
    if (std::abs(x - side * id_.eye_x) > id_.glasses_r + 2.f || std::abs(y - 1.f) > id_.glasses_r) return c;
    const float d = std::abs(EllipseDistance(x - side * id_.eye_x, y - 1.f, id_.glasses_r, id_.glasses_r * 0.75f)) - 0.7f;
    return Mix(c, id_.glasses_color, Cover(d * k));
  }

  Rgb Nose(Rgb c, float x, float y, float k) const {
    const float top = id_.nose_y - id_.nose_length;
    // the bridge's shadow falls on the side away from the light
    if (y > top && y < id_.nose_y) {
      const float side = v_.light_x > 0 ? -1.f : 1.f;
      const float ridge = std::abs(x - side * (2.5f + (y - top) / id_.nose_length * id_.nose_width * 0.35f));
      c = Scale(c, 1.f - 0.18f * std::exp(-ridge * ridge / 3.f) * (y - top) / id_.nose_length);
    }
    if (std::abs(x) > id_.nose_width || std::abs(y - id_.nose_y) > 6.f) return c;
    const float tip = EllipseDistance(x, y - id_.nose_y + 1.f, id_.nose_width * 0.45f, 3.5f);
    c = Mix(c, Scale(c, 1.08f), Cover(tip * k) * 0.6f);
    for (int s = -1; s <= 1; s += 2) {
      const float d = EllipseDistance(x - s * id_.nose_width * 0.32f, y - id_.nose_y - 1.5f, 1.8f, 1.1f);
      c = Mix(c, Scale(c, 0.45f), Cover(d * k));
    }
    return c;
  }

  Rgb Mouth(Rgb c, float x, float y, float k) const {
    const float w = id_.mouth_width * (1.f + 0.08f * v_.smile);
    if (std::abs(x) > w + 2.f || std::abs(y - id_.mouth_y) > 12.f) return c;
    const float t = x / w;
    const float line = id_.mouth_y - v_.smile * 2.2f * t * t;  // the corners rise with a smile
    const float gap = v_.mouth_open * (1.f - t * t);
    const float top = line - gap * 0.5f, bottom = line + gap * 0.5f;
    const float edge = std::abs(x) - w;
    const float upper = std::max(std::max(y - top, top - id_.lip_top * (1.f - 0.5f * t * t) - y), edge);
    const float lower = std::max(std::max(bottom - y, y - bottom - id_.lip_bottom * (1.f - 0.6f * t * t)), edge);
    const float opening = std::max(std::max(y - bottom, top - y), edge);
    c = Mix(c, Rgb{45, 20, 20}, Cover(opening * k) * Clamp01(gap));
    c = Mix(c, id_.lips, Cover(upper * k));
    return Mix(c, Scale(id_.lips, 1.08f), Cover(lower * k));
  }

  Rgb HairFront(Rgb color, float x, float y, float k) const {
    if (id_.bald) return color;
    // hair on top of the head down to the hairline, which follows a curve and a side part
    const float a = id_.face_a + id_.hair_volume * 0.6f, b = id_.face_b + id_.hair_volume;
    const float sx = x - v_.yaw * id_.face_a * 0.25f;
    const float cap = EllipseDistance(sx, y - id_.face_y + id_.hair_volume * 0.4f, a, b);
    const float xn = sx / id_.face_a;
    const float parting = (sx - id_.part) * (sx - id_.part) / 30.f;
    const float top = id_.hairline + id_.hair_curve * xn * xn - (parting < 8.f ? 3.f * std::exp(-parting) : 0.f) - v_.pitch * 12.f;
    // towards the temples the hairline comes down to the ears
    const float t = Clamp01((std::abs(xn) - 0.62f) / 0.3f);
    const float hairline = top + (id_.ear_y - 4.f - top) * t * t * (3.f - 2.f * t);
    const float cover = Cover(std::max(cap, y - hairline) * k);
    return cover > 0.f ? Mix(color, Hair(x, y), cover) : color;
  }

  Rgb Occluders(Rgb color, float x, float y, float k) const {
    switch (v_.occluder) {
      case 1:  // sunglasses
        for (int side = -1; side <= 1; side += 2) {
          const float d = EllipseDistance(x - side * id_.eye_x, y - 1.f, 10.f, 7.f);
          color = Mix(color, Scale(v_.occluder_color, 0.15f), Cover(d * k));
        }
        return Mix(color, Rgb{20, 20, 20}, Cover((std::max(std::abs(y), std::abs(x) - 8.f) - 1.f) * k));
      case 2: {  // a mask over nose and mouth
        const float d = std::max(EllipseDistance(x, y - id_.face_y, id_.face_a - 2.f, id_.face_b - 3.f), id_.nose_y - 6.f - y);
        return Mix(color, Mix(v_.occluder_color, Rgb{230, 235, 240}, 0.6f), Cover(d * k));
      }
      case 3: {  // a bar (a hand, a microphone, a strand of something) across the face
        const float n = x * std::cos(v_.bar_angle) + y * std::sin(v_.bar_angle) - v_.bar_offset;
        return Mix(color, v_.occluder_color, Cover((std::abs(n) - v_.bar_width * 0.5f) * k));
      }
      case 4: {  // a hat brim over the forehead
        const float d = std::max(y - v_.hat_y, EllipseDistance(x, y - id_.face_y, id_.face_a + 12.f, id_.face_b + 14.f));
        return Mix(color, v_.occluder_color, Cover(d * k));
      }
      default:
        return color;
    }
  }

  const Identity& id_;
  const Variation& v_;
  const float roll_cos_, roll_sin_, bg_cos_, bg_sin_, yaw_cos_, yaw_sin_, pitch_cos_, pitch_sin_, light_z_;
};

// A 3×3 box blur (two 3-tap passes, edges clamped), blended in by `amount` (up to 1).
void BoxBlur(std::vector<float>& px, int w, int h, float amount) {
  const float t = std::min(amount, 1.f);
  std::vector<float> rows(px.size());
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const size_t l = (size_t(y) * w + std::max(x - 1, 0)) * 3, m = (size_t(y) * w + x) * 3, r = (size_t(y) * w + std::min(x + 1, w - 1)) * 3;
      for (int c = 0; c < 3; ++c) rows[m + c] = px[l + c] + px[m + c] + px[r + c];
    }
  }
  for (int y = 0; y < h; ++y) {
    const size_t up = size_t(std::max(y - 1, 0)) * w * 3, mid = size_t(y) * w * 3, down = size_t(std::min(y + 1, h - 1)) * w * 3;
    for (int i = 0; i < w * 3; ++i) {
      const float box = (rows[up + i] + rows[mid + i] + rows[down + i]) / 9.f;
      px[mid + i] += (box - px[mid + i]) * t;
    }
  }
}

}  // namespace

RgbImage RenderFace(uint64_t seed, uint64_t identity, uint64_t image) {
  Rng identity_rng(SampleSeed(seed, identity, 0x1d));
  const Identity id = MakeIdentity(identity_rng);
  Rng image_rng(SampleSeed(seed, identity, 0x1000 + image));
  const Variation v = MakeVariation(image_rng, id);
  const Painter painter(id, v);
  const int n = kFaceSize;
  std::vector<float> px(size_t(n) * n * 3);
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      const Rgb c = painter.Shade(x + 0.5f, y + 0.5f);
      float* p = &px[(size_t(y) * n + x) * 3];
      p[0] = c.r;
      p[1] = c.g;
      p[2] = c.b;
    }
  }
  if (v.blur > 0.f) BoxBlur(px, n, n, v.blur);
  RgbImage img(n, n);
  for (size_t i = 0; i < px.size(); ++i) {
    // sensor noise, near enough to normal: the sum of four uniforms (from one draw), variance 1
    const uint64_t bits = image_rng.Next();
    float sum = 0;
    for (int j = 0; j < 4; ++j) sum += float((bits >> (16 * j)) & 0xffff) * (1.f / 65536.f);
    const float value = px[i] + (sum - 2.f) * 1.7320508f * v.noise;
    img.pixels[i] = static_cast<uint8_t>(std::min(255.f, std::max(0.f, std::nearbyint(value))));
  }
  return img;
}

}  // namespace arcface
