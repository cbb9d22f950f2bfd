import type { CloudPart } from '../adapters/aws/config.ts';

/**
 * The configuration parts (src/adapters/aws/config.ts) each Lambda function reads, and so the resources
 * it is given: its factory (lambda.ts) builds exactly these, and the stack (infra/bindings.ts) sets their
 * variables and grants their access together, for these and no others. The keys are the files under
 * functions/api/.
 */
export const LAMBDA_PARTS = {
  search: ['bucket', 'table', 'milvus', 'model', 'decode'],
  // The table's library item says which index generation (Milvus collection) is live.
  count: ['milvus', 'table', 'modelIdentity'],
  progress: ['table', 'queue'],
  // The table for the workers' outage item only (infra/bindings.ts).
  health: ['milvus', 'modelIdentity', 'table'],
  ingest: ['bucket', 'table', 'queue', 'milvus', 'modelIdentity'],
  uploads: ['bucket', 'decode'],
  images: ['bucket'],
  'delete-image': ['bucket', 'table', 'milvus', 'modelIdentity'],
  // Empties the index, records the task and queues it: the worker cleans up (src/app/tasks.ts).
  'delete-all': ['table', 'queue', 'milvus', 'modelIdentity'],
  // Starts a verification the worker runs; the scheduled rule invokes it too (infra/verify-schedule.ts).
  verify: ['table', 'queue'],
  // Starts a re-index with the stack's model: records the task and queues it; the worker builds the new
  // collection (src/app/reindex.ts).
  reindex: ['table', 'queue', 'milvus', 'modelIdentity'],
  // GET /duplicates pages the last scan's groups (sizes read from the bucket, scores from Milvus);
  // POST /duplicates/scan queues a scan the worker runs; dismissals are kept in the table; sharp
  // (decode) reads the image headers.
  duplicates: ['bucket', 'table', 'queue', 'milvus', 'modelIdentity', 'decode'],
} as const satisfies Record<string, readonly CloudPart[]>;

export type LambdaName = keyof typeof LAMBDA_PARTS;
export type PartsOf<F extends LambdaName> = (typeof LAMBDA_PARTS)[F][number];
