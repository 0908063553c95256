/**
 * Data: insightface packs (MXNet RecordIO), image folders, synthetic and generated identities,
 * verification .bin files, native batch decoding with arcface_torch's augmentations, and the
 * distributed, prefetching, resumable loader.
 */
export { DataError } from './errors.js';
export { encodeRecord, readRecord, parseIndex, IndexedRecordIO, IndexedRecordIOWriter, RECORDIO_MAGIC, memorySource, fileSource, type ByteSource, type RecordIndex } from './recordio.js';
export { packIR, unpackIR, imageLabel, IR_HEADER_SIZE, type IRHeader } from './ir-header.js';
export { readProperty, writeProperty, type PackProperty } from './property.js';
export type { FaceDataset } from './dataset.js';
export { MXFaceDataset } from './mx-face-dataset.js';
export { ImageFolder, IMG_EXTENSIONS } from './image-folder.js';
export { SyntheticDataset, type SyntheticOptions } from './synthetic.js';
export { PackWriter, packFolder, checkPack, imageFormat, type PackReport } from './pack.js';
export { generateIdentities, heldOutPairs, defaultGenerateOptions, GENERATOR_VERSION, type GenerateOptions, type GeneratedDataset } from './generated.js';
export { parseVerificationBin, readVerificationBin, encodeVerificationBin, writeVerificationBin, type VerificationSet } from './verification-bin.js';
export { ImageDecoder, decodeImage, encodeJpeg, resizeImage, type AugmentOptions, type DecodeOptions, type DecodedBatch, type ImageSource } from './decode.js';
export { DistributedSampler, type DistributedSamplerOptions } from './sampler.js';
export { randperm, MT19937 } from './randperm.js';
export { normaliseImages } from './normalise.js';
export { DataLoader, type DataLoaderOptions, type Batch, type LoaderState } from './loader.js';
