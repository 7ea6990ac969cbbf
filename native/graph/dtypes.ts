/** ONNX TensorProto data type numbers for our dtypes. */
import type { DType } from './ir.js';

export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  bfloat16: 16,
};

export const OPSET = 17;
export const IR_VERSION = 8;
