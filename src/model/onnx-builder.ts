import { endianness } from 'node:os';
import {
  AttributeType,
  DataType,
  type OnnxAttribute,
  type OnnxDimension,
  type OnnxNode,
  type OnnxTensor,
  type OnnxValueInfo,
} from './onnx-proto.ts';

// ONNX raw_data is little-endian; typed-array bytes are only that on little-endian hosts (all we target).
if (endianness() !== 'LE') throw new Error('ONNX model tooling needs a little-endian host');

export function floatTensor(name: string, dims: number[], values: Float32Array): OnnxTensor {
  return { name, dims, data_type: DataType.FLOAT, raw_data: bytesOf(values) };
}

export function int64Tensor(name: string, values: number[]): OnnxTensor {
  return { name, dims: [values.length], data_type: DataType.INT64, int64_data: values };
}

export function intAttr(name: string, i: number): OnnxAttribute {
  return { name, type: AttributeType.INT, i };
}

export function intsAttr(name: string, ints: number[]): OnnxAttribute {
  return { name, type: AttributeType.INTS, ints };
}

export function floatAttr(name: string, f: number): OnnxAttribute {
  return { name, type: AttributeType.FLOAT, f };
}

export function node(
  op_type: string,
  name: string,
  input: string[],
  output: string[],
  attribute: OnnxAttribute[] = [],
): OnnxNode {
  return { op_type, name, input, output, attribute };
}

/** A tensor value description; a string dimension is symbolic (e.g. "batch"). */
export function tensorValue(name: string, elemType: number, dims: (number | string)[]): OnnxValueInfo {
  const dim: OnnxDimension[] = dims.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d }));
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim } } } };
}

export function bytesOf(values: Float32Array | Uint16Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** The float32 values of a FLOAT tensor, whichever field holds them. */
export function floatValues(tensor: OnnxTensor): Float32Array {
  if (tensor.data_type !== DataType.FLOAT) throw new Error(`Tensor ${tensor.name} is not float32`);
  if (tensor.data_location === 1)
    throw new Error(`Tensor ${tensor.name} uses external data, which is not supported`);
  const bytes = tensor.raw_data?.length ? tensor.raw_data : (tensor.float_data ?? new Uint8Array());
  // Copy: decoded bytes are unaligned views into the file buffer.
  const copy = new Uint8Array(bytes);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}
