import protobuf from 'protobufjs';

/**
 * The part of onnx/onnx `onnx.proto` (IR 7+, field numbers unchanged since) that VGG-style models use.
 * Embedded as text, not loaded from a file, so bundles need no asset. Two deliberate deviations:
 * - `TensorProto.float_data` / `double_data` are declared `bytes`: onnx.proto marks them
 *   `[packed = true]`, so on the wire they are one length-delimited run of little-endian values, exactly
 *   what `bytes` reads. Decoding them as `repeated float` would build a JS array of 138 M numbers for
 *   the Model Zoo VGG16 (its exporter writes float_data, not raw_data).
 * - Fields this tool cannot carry faithfully (sparse initialisers, functions, training info) are
 *   declared `bytes` only so that their presence can be detected and refused instead of silently lost.
 */
const ONNX_SCHEMA = `
syntax = "proto3";
package onnx;

message AttributeProto {
  string name = 1;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  TensorProto t = 5;
  GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  string doc_string = 13;
  int32 type = 20;
  string ref_attr_name = 21;
}

message ValueInfoProto {
  string name = 1;
  TypeProto type = 2;
  string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  repeated AttributeProto attribute = 5;
  string doc_string = 6;
  string domain = 7;
}

message StringStringEntryProto {
  string key = 1;
  string value = 2;
}

message OperatorSetIdProto {
  string domain = 1;
  int64 version = 2;
}

message ModelProto {
  int64 ir_version = 1;
  string producer_name = 2;
  string producer_version = 3;
  string domain = 4;
  int64 model_version = 5;
  string doc_string = 6;
  GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
  repeated bytes training_info = 20;
  repeated bytes functions = 25;
}

message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
  repeated bytes sparse_initializer = 15;
}

message TensorProto {
  repeated int64 dims = 1;
  int32 data_type = 2;
  bytes float_data = 4;
  repeated int32 int32_data = 5;
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7;
  string name = 8;
  bytes raw_data = 9;
  bytes double_data = 10;
  string doc_string = 12;
  repeated StringStringEntryProto external_data = 13;
  int32 data_location = 14;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
  string denotation = 6;
}
`;

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT64: 7, FLOAT16: 10 } as const;

/** AttributeProto.AttributeType values used here. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

export interface OnnxTensor {
  name: string;
  dims: number[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: Uint8Array;
  int32_data?: number[];
  int64_data?: number[];
  double_data?: Uint8Array;
  string_data?: Uint8Array[];
  external_data?: { key: string; value: string }[];
  data_location?: number;
  doc_string?: string;
}

export interface OnnxAttribute {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: OnnxTensor;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  doc_string?: string;
}

export interface OnnxNode {
  input: string[];
  output: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute?: OnnxAttribute[];
  doc_string?: string;
}

export interface OnnxDimension {
  dim_value?: number;
  dim_param?: string;
  denotation?: string;
}

export interface OnnxValueInfo {
  name: string;
  type?: { tensor_type?: { elem_type: number; shape?: { dim?: OnnxDimension[] } }; denotation?: string };
  doc_string?: string;
}

export interface OnnxGraph {
  name: string;
  node: OnnxNode[];
  initializer: OnnxTensor[];
  input: OnnxValueInfo[];
  output: OnnxValueInfo[];
  value_info?: OnnxValueInfo[];
  doc_string?: string;
  sparse_initializer?: Uint8Array[];
}

/** Decoded with protobufjs defaults off: fields at their default value (0, "") are absent. */
export interface OnnxModel {
  ir_version: number;
  opset_import: { domain?: string; version: number }[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: number;
  doc_string?: string;
  graph: OnnxGraph;
  metadata_props?: { key: string; value: string }[];
  training_info?: Uint8Array[];
  functions?: Uint8Array[];
}

const modelType = protobuf.parse(ONNX_SCHEMA, { keepCase: true }).root.lookupType('onnx.ModelProto');

export function encodeModel(model: OnnxModel): Uint8Array {
  return modelType.encode(modelType.fromObject(model)).finish();
}

/** Decodes a serialised ModelProto; int64 values come back as numbers, bytes as views on `bytes`. */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  const message = modelType.decode(bytes);
  const model = modelType.toObject(message, { longs: Number, arrays: true }) as OnnxModel;
  if (!model.graph) throw new Error('Not an ONNX model: the ModelProto has no graph');
  return model;
}

/** The opset version the model imports for the default (ai.onnx) domain. */
export function defaultOpset(model: OnnxModel): number {
  const entry = model.opset_import.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!entry) throw new Error('The ONNX model imports no ai.onnx operator set');
  return entry.version;
}
