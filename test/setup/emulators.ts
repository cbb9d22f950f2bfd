import type { TestProject } from 'vitest/node';
import { startEmulators } from '../services/emulators.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** moto server endpoint (AWS_ENDPOINT_URL) shared by the cloud tests. */
    awsEndpoint: string;
    /** Milvus Lite gRPC address (MILVUS_ADDRESS) shared by the cloud tests. */
    milvusAddress: string;
  }
}

/**
 * Vitest global setup of the integration tier: creates .venv/ when missing (test/services/venv.ts), starts
 * moto server and Milvus Lite on free loopback ports and provides their addresses (`inject('awsEndpoint')`,
 * `inject('milvusAddress')`); stops both when the run ends. Tests isolate themselves with unique names.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const emulators = await startEmulators((line) => console.log(line));
  project.provide('awsEndpoint', emulators.awsEndpoint);
  project.provide('milvusAddress', emulators.milvusAddress);
  return () => emulators.stop();
}
