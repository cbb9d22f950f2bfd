import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import protobuf from 'protobufjs';

const FLOAT = 1;
const UINT8 = 2;
const INT8 = 3;
const INT32 = 6;
const VARINT = 0;
const BYTES = 2;
/** The zero point of the int8 matrix: codes are stored as uint8 = int8 + 128 (MLAS's fast U8S8 path). */
export const INT8_ZERO_POINT = 128;

/** The arrays of each precision: float32 rows, or int8 codes (+ INT8_ZERO_POINT) scored in int32. */
interface Precisions {
  float32: { matrix: Float32Array; query: Float32Array; scores: Float32Array };
  int8: { matrix: Uint8Array; query: Int8Array; scores: Int32Array };
}
export type GemvPrecision = keyof Precisions;

const ELEMENT_TYPES = {
  float32: { matrix: 'float32', query: 'float32', onnx: [FLOAT, FLOAT, FLOAT] },
  int8: { matrix: 'uint8', query: 'int8', onnx: [UINT8, INT8, INT32] },
} as const;

/**
 * Scores every row of a matrix against queries: `scores = matrix · queries`, a [rows, dim] × [dim, n]
 * MatMul run by onnxruntime's MLAS kernels (SIMD, on all cores). Measured on the 2-core dev machine it
 * is ~6× faster than a JS loop over the same Float32Array (scripts/bench-index.ts). In `int8` precision
 * the matrix holds int8 codes, a quarter of the memory traffic, multiplied by an ONNX MatMulInteger
 * (`(matrix - 128) · query` in int32; MLAS uses VNNI where the CPU has it). The one-node ONNX graph is
 * written here with protobufjs's wire writer rather than shipped as a file; field numbers are from
 * onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto).
 */
export class OnnxGemv<P extends GemvPrecision = 'float32'> {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly dimension: number,
    private readonly precision: P,
  ) {}

  static async create(dimension: number, threads?: number): Promise<OnnxGemv<'float32'>>;
  static async create<P extends GemvPrecision>(
    dimension: number,
    threads: number | undefined,
    precision: P,
  ): Promise<OnnxGemv<P>>;
  static async create(
    dimension: number,
    threads?: number,
    precision: GemvPrecision = 'float32',
  ): Promise<OnnxGemv<GemvPrecision>> {
    return new OnnxGemv(await gemvSession(matMulModel(dimension, precision), threads), dimension, precision);
  }

  /** `matrix` holds `rows` row-major vectors (its first rows × dimension values are read, not copied). */
  scores(matrix: Precisions[P]['matrix'], rows: number, query: Precisions[P]['query']) {
    return this.scoresMany(matrix, rows, query, 1);
  }

  /**
   * Scores `rows` vectors against `columns` queries at once; `queries` is [dimension, columns] (column j is
   * query j) and the result [rows, columns], row-major.
   */
  async scoresMany(
    matrix: Precisions[P]['matrix'],
    rows: number,
    queries: Precisions[P]['query'],
    columns: number,
  ): Promise<Precisions[P]['scores']> {
    const data = matrix.length === rows * this.dimension ? matrix : matrix.subarray(0, rows * this.dimension);
    const types = ELEMENT_TYPES[this.precision];
    const out = await this.session.run({
      matrix: new ort.Tensor(types.matrix, data, [rows, this.dimension]),
      query: new ort.Tensor(types.query, queries, [this.dimension, columns]),
    });
    return out.scores?.data as Precisions[P]['scores'];
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

function gemvSession(model: Uint8Array, threads = availableParallelism()): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // One search is a few ms of work: idle threads should sleep, not spin against the embedder's threads.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
}

function matMulModel(dimension: number, precision: GemvPrecision): Uint8Array {
  const [matrixType, queryType, scoresType] = ELEMENT_TYPES[precision].onnx;
  const w = protobuf.Writer.create();
  const field = (no: number, wire: number) => w.uint32((no << 3) | wire);
  const str = (no: number, value: string) => field(no, BYTES).string(value);
  const valueInfo = (no: number, name: string, type: number, dims: (number | string)[]) => {
    field(no, BYTES).fork();
    str(1, name);
    field(2, BYTES).fork(); // TypeProto
    field(1, BYTES).fork(); // TypeProto.Tensor
    field(1, VARINT).int32(type);
    field(2, BYTES).fork(); // TensorShapeProto
    for (const dim of dims) {
      field(1, BYTES).fork();
      if (typeof dim === 'number') field(1, VARINT).int64(dim);
      else str(2, dim);
      w.ldelim();
    }
    w.ldelim().ldelim().ldelim().ldelim();
  };
  field(1, VARINT).int64(8); // ir_version
  str(2, 'pic-search');
  field(8, BYTES).fork(); // opset_import
  str(1, '');
  field(2, VARINT).int64(13);
  w.ldelim();
  field(7, BYTES).fork(); // graph
  field(1, BYTES).fork(); // node
  str(1, 'matrix');
  str(1, 'query');
  if (precision === 'int8') str(1, 'zero');
  str(2, 'scores');
  str(4, precision === 'float32' ? 'MatMul' : 'MatMulInteger');
  w.ldelim();
  str(2, 'gemv');
  if (precision === 'int8') {
    field(5, BYTES).fork(); // initializer: the matrix's zero point, a uint8 scalar
    field(2, VARINT).int32(UINT8);
    str(8, 'zero');
    field(9, BYTES).bytes(Uint8Array.of(INT8_ZERO_POINT));
    w.ldelim();
  }
  valueInfo(11, 'matrix', matrixType, ['rows', dimension]);
  valueInfo(11, 'query', queryType, [dimension, 'columns']);
  valueInfo(12, 'scores', scoresType, ['rows', 'columns']);
  w.ldelim();
  return w.finish();
}
