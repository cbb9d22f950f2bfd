import { defineConfig } from 'vitest/config';

// Three tiers (CONVENTIONS rule 10): unit tests beside the code; contract + cloud integration against
// real emulators; end to end over HTTP and in a real browser. Global setups prepare what each tier needs
// (the seeded model, the emulator venv, Chromium) so a fresh clone passes with `npm test` alone.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 600_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['{src,functions,local,infra,layers,scripts,web}/**/*.test.ts', 'test/repo/**/*.test.ts'],
          globalSetup: ['test/setup/model.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/{contract,cloud,e2e,browser}/**/*.test.ts'],
          globalSetup: ['test/setup/model.ts', 'test/setup/emulators.ts'],
          fileParallelism: false,
        },
      },
    ],
  },
});
