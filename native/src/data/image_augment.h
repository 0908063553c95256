// Training augmentations of arcface_torch on 8-bit RGB images: random horizontal flip and the
// optional DALI set (random downscale-upscale, Gaussian blur, HSV jitter, greyscale), then the
// (x/255 − 0.5)/0.5 normalisation into a CHW batch slot.
#pragma once

#include <cstdint>

#include "data/image_codec.h"
#include "core/rng.h"

namespace arcface {

// One stream per (seed, epoch, sample): the augmentation of a sample never depends on which
// thread, batch or rank handles it.
uint64_t SampleSeed(uint64_t seed, uint64_t epoch, uint64_t key);

struct AugmentOptions {
  double flip = 0.5;  // probability of a horizontal flip
  bool dali = false;  // arcface_torch's dali_aug set, with its probabilities below
  double resize = 0.1;
  double blur = 0.2;
  double hsv = 0.2;
  double gray = 0.1;
};

// Applies the DALI set in place (in its order: resize, blur, HSV, grey) and draws the flip.
// Every random value is drawn whether or not its transform applies, so the stream of one
// transform does not shift when another's probability changes. Returns whether to flip.
bool Augment(RgbImage& img, Rng& rng, const AugmentOptions& options);

// Writes img (optionally mirrored) into a 3 × H × W slot: floats normalised as torchvision's
// ToTensor + Normalize(0.5, 0.5), or the raw bytes.
void WriteChw(const RgbImage& img, bool flip, float* out);
void WriteChw(const RgbImage& img, bool flip, uint8_t* out);

}  // namespace arcface
