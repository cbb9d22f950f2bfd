import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// `vite build web` (or buildWeb in ensure-built.ts): the page is static, and './' asset paths let the same
// build run at the root of the local server and of the web bucket.
export default defineConfig(({ command }) => ({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  // Vite picks lit's development build when NODE_ENV is not 'production' (vitest sets 'test', and the
  // browser tests build the page): a build is always the production one.
  ...(command === 'build' ? { resolve: { conditions: ['module', 'browser', 'production'] } } : {}),
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: true,
  },
  server: {
    // `vite web` during development: the API runs on `npm start` (port 8080).
    proxy: Object.fromEntries(
      [
        '/health',
        '/count',
        '/progress',
        '/ingest',
        '/images',
        '/uploads',
        '/search',
        '/duplicates',
        '/thumbnails',
        '/config.json',
        '/openapi.json',
      ].map((route) => [route, process.env.PIC_API ?? 'http://localhost:8080']),
    ),
  },
}));
