import type { CloudPart } from '../adapters/aws/config.ts';

/**
 * The configuration parts (src/adapters/aws/config.ts) each Lambda function reads, and so the resources
 * it is given: its factory (lambda.ts) builds exactly these, and the stack (infra/bindings.ts) sets their
 * variables and grants their access together, for these and no others. The keys are the files under
 * functions/api/.
 */
export const LAMBDA_PARTS = {
  search: ['bucket', 'table', 'milvus', 'model', 'decode'],
  count: ['milvus'],
  progress: ['table', 'queue'],
  health: ['milvus', 'modelIdentity'],
  ingest: ['bucket', 'table', 'queue', 'milvus', 'modelIdentity'],
  uploads: ['bucket', 'decode'],
  images: ['bucket'],
  'delete-image': ['bucket', 'table', 'milvus'],
  'delete-all': ['bucket', 'table', 'milvus'],
} as const satisfies Record<string, readonly CloudPart[]>;

export type LambdaName = keyof typeof LAMBDA_PARTS;
export type PartsOf<F extends LambdaName> = (typeof LAMBDA_PARTS)[F][number];
