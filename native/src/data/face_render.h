// The generated-identities dataset: a deterministic renderer of 112×112 face-like images.
// Each identity is a stable random appearance (head and jaw shape, skin tone and texture, hair,
// brows, eyes, nose, mouth, facial hair, moles, glasses); each image of it a random variation
// (pose, expression, lighting, background, clothes, occlusion, blur, noise). The same
// (seed, identity, image) always gives the same pixels.
#pragma once

#include <cstdint>

#include "data/image_codec.h"

namespace arcface {

constexpr int kFaceSize = 112;

RgbImage RenderFace(uint64_t seed, uint64_t identity, uint64_t image);

}  // namespace arcface
