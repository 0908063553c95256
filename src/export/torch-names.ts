/**
 * The output name arcface_torch's torch2onnx.py files carry. torch.onnx.export names an unnamed
 * output after its internal value number, so it differs per network (insightface's published
 * w600k_r50.onnx, exported at opset 11, has '683'). Measured with PyTorch 1.13 for opsets 13–17
 * (test/fixtures/make_onnx_names.py); the same for every embedding size.
 */
const TORCH_OUTPUT_NAMES: Readonly<Record<string, string>> = {
  r18: '276',
  r34: '492',
  r50: '708',
  r100: '1383',
  r200: '2706',
  mbf: '553',
  mbf_large: '1003',
};

/** torch.onnx.export's output name for an arcface_torch network, or undefined for others. */
export const torchOutputName = (network: string): string | undefined => TORCH_OUTPUT_NAMES[network];
