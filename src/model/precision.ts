import { readFile, stat } from 'node:fs/promises';
import { cpus } from 'node:os';
import { z } from 'zod';
import { type LoadedManifest, loadManifest, type ModelManifest } from './manifest.ts';
import { verifyModelFile } from './model-files.ts';

/** PIC_MODEL_PRECISION: `auto` takes int8 on the CPU when it pays (below), `fp32` never, `int8` whenever valid. */
export const Precision = z.enum(['auto', 'fp32', 'int8']);
export type Precision = z.infer<typeof Precision>;

/** What start-up logs through; a pino logger fits. */
export interface PrecisionLog {
  info(message: string): void;
  error(message: string): void;
}

export interface CpuInfo {
  model: string;
  /** The instruction-set flags that decide int8 speed (VNNI, AVX-512, AMX), as /proc/cpuinfo names them. */
  flags: string[];
}

/** Flags after which int8 convolutions run on dot-product instructions (U8S8 without saturation). */
const INT8_FLAGS = ['avx512_vnni', 'avx_vnni', 'amx_int8'];
const REPORTED_FLAGS = [...INT8_FLAGS, 'avx512f', 'avx512bw', 'avx2'];

/** This processor's model name and its int8-relevant flags (none known off Linux). */
export async function cpuInfo(): Promise<CpuInfo> {
  const text = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const present = new Set(/^flags\s*:\s*(.*)$/m.exec(text)?.[1]?.split(/\s+/) ?? []);
  return { model: cpus()[0]?.model ?? 'unknown', flags: REPORTED_FLAGS.filter((flag) => present.has(flag)) };
}

/** models/x.onnx → models/x.int8.onnx: where `npm run model:quantize` writes the int8 model of x. */
export function int8ModelPathFor(fp32ModelPath: string): string {
  return fp32ModelPath.replace(/(\.onnx)?$/, '.int8.onnx');
}

export function int8ManifestPathFor(fp32ModelPath: string): string {
  return int8ModelPathFor(fp32ModelPath).replace(/\.onnx$/, '.manifest.json');
}

/**
 * models/x.int8.refused.json: the quality gate refused x's int8 model. `npm run model:quantize` writes it
 * so that `npm start` does not quantize the same model again at every start; another fp32 file or another
 * whitening (by their SHA-256) is quantized afresh.
 */
export const Int8Refusal = z.object({
  sourceSha256: z.string(),
  whiteningSha256: z.string().optional(),
  reasons: z.array(z.string()).min(1),
});
export type Int8Refusal = z.infer<typeof Int8Refusal>;

export function int8RefusalPathFor(fp32ModelPath: string): string {
  return int8ModelPathFor(fp32ModelPath).replace(/\.onnx$/, '.refused.json');
}

/**
 * How `npm run model:quantize` makes int8 models now (scripts/quantize/quantize.py), recorded in their
 * manifests as `quantization.tool`. An int8 model made by another recipe still runs; `npm start` makes it
 * again beside it (int8Outdated).
 */
export const INT8_RECIPE = 'onnxruntime 1.31.1 quantize_static: Conv, Relu, MaxPool';

/** The gate's refusal of this very fp32 model's int8 model, if one is recorded. */
async function recordedRefusal(fp32: LoadedManifest): Promise<Int8Refusal | undefined> {
  const text = await readFile(int8RefusalPathFor(fp32.modelPath), 'utf8').catch(() => undefined);
  const parsed = text === undefined ? undefined : Int8Refusal.safeParse(JSON.parse(text));
  const refusal = parsed?.success ? parsed.data : undefined;
  return refusal?.sourceSha256 === fp32.manifest.sha256 &&
    refusal.whiteningSha256 === fp32.manifest.output.whitening?.sha256
    ? refusal
    : undefined;
}

/** The int8 model chosen, with the fp32 model to fall back on if its session fails; or the fp32 model alone. */
export interface ChosenModel {
  loaded: LoadedManifest;
  precision: 'fp32' | 'int8';
  /** Set with int8: the session opens this instead, loudly, if the int8 model fails to load or check. */
  fallback?: LoadedManifest;
  reason: string;
  /** Where the int8 model would be, set when there is none: `npm start` can make it (local/prepare-int8.ts). */
  int8Missing?: string;
  /** The int8 model's manifest, set when an earlier recipe made it (INT8_RECIPE): `npm start` remakes it. */
  int8Outdated?: string;
}

/**
 * Picks the precision of the CPU sessions. fp32 on CUDA (int8 QDQ would run on the CPU there) and when
 * asked; otherwise the int8 model beside the fp32 one when it exists, passes its checks (below), and —
 * with `auto` — is faster here: as measured when it was made if this is the same processor, else when
 * the processor has VNNI or AMX (without them int8 saturates or runs slower). Every refusal of an int8
 * model is logged as an error; the fp32 model is used instead.
 */
export async function chooseModel(
  fp32: LoadedManifest,
  options: { precision: Precision; provider: 'cpu' | 'cuda'; log: PrecisionLog },
): Promise<ChosenModel> {
  const { precision, provider, log } = options;
  const fp32Only = (reason: string): ChosenModel => {
    log.info(`Model precision fp32: ${reason}`);
    return { loaded: fp32, precision: 'fp32', reason };
  };
  if (precision === 'fp32') return fp32Only('PIC_MODEL_PRECISION=fp32');
  if (provider === 'cuda') return fp32Only('the CUDA provider runs the fp32 (or fp16) model');
  const manifestPath = int8ManifestPathFor(fp32.modelPath);
  if (!(await stat(manifestPath).catch(() => undefined))) {
    const refusal = await recordedRefusal(fp32);
    if (refusal) {
      const reason = `the quality gate refused this model's int8 model (${refusal.reasons.join('; ')})`;
      if (precision === 'int8') log.error(`PIC_MODEL_PRECISION=int8 but ${reason}; using fp32`);
      return fp32Only(reason);
    }
    const reason = `no int8 model at ${manifestPath} (npm run model:quantize makes it)`;
    if (precision === 'int8') log.error(`PIC_MODEL_PRECISION=int8 but ${reason}; using fp32`);
    return { ...fp32Only(reason), int8Missing: manifestPath };
  }
  let int8: LoadedManifest;
  try {
    int8 = await loadManifest(manifestPath);
    checkQuantizedFrom(int8.manifest, fp32.manifest, manifestPath);
    await verifyModelFile(int8);
  } catch (error) {
    const reason = `INT8 MODEL REFUSED: ${(error as Error).message}`;
    log.error(`${reason}. Using the fp32 model instead; run npm run model:quantize to make it again.`);
    return { loaded: fp32, precision: 'fp32', reason };
  }
  // An earlier recipe's int8 model runs until its remake is ready, unless the gate refused the remake.
  const remake =
    int8.manifest.quantization?.tool !== INT8_RECIPE && !(await recordedRefusal(fp32))
      ? { int8Outdated: manifestPath }
      : {};
  const chosen = (reason: string): ChosenModel => {
    log.info(`Model precision int8 (${manifestPath}): ${reason}`);
    return { loaded: int8, precision: 'int8', fallback: fp32, reason, ...remake };
  };
  const notChosen = (reason: string): ChosenModel => ({ ...fp32Only(reason), ...remake });
  if (precision === 'int8') return chosen('PIC_MODEL_PRECISION=int8');
  const speed = int8.manifest.quantization?.speed;
  const here = await cpuInfo();
  if (speed && speed.cpu === here.model && speed.flags.join() === here.flags.join()) {
    const ratio = (speed.fp32MsPerImage / speed.int8MsPerImage).toFixed(2);
    if (speed.int8MsPerImage < speed.fp32MsPerImage)
      return chosen(`measured ${ratio}× faster than fp32 on this processor (${here.model}) when it was made`);
    return notChosen(`int8 measured ${ratio}× the speed of fp32 on this processor when it was made`);
  }
  const vnni = here.flags.filter((flag) => INT8_FLAGS.includes(flag));
  if (vnni.length > 0)
    return chosen(`this processor (${here.model}) has ${vnni.join(', ')}; int8 was measured on another one`);
  return notChosen(
    `this processor (${here.model}) has no VNNI or AMX, where int8 is often no faster; PIC_MODEL_PRECISION=int8 forces it`,
  );
}

/** An int8 manifest must describe the same model as the fp32 one it sits beside, made from that very file. */
function checkQuantizedFrom(int8: ModelManifest, fp32: ModelManifest, manifestPath: string): void {
  const source = int8.quantization?.source;
  if (!source) throw new Error(`${manifestPath} has no quantization record`);
  if (source.sha256 !== fp32.sha256) {
    throw new Error(
      `${manifestPath} was quantized from a model with SHA-256 ${source.sha256}, not from the installed ${fp32.file} (${fp32.sha256})`,
    );
  }
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const fields = ['name', 'input', 'normalisation', 'profile', 'output'] as const;
  const differing = fields.filter((field) => !same(int8[field], fp32[field]));
  if (differing.length > 0)
    throw new Error(`${manifestPath} differs from its fp32 model in ${differing.join(', ')}`);
}
