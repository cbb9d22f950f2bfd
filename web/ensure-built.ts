/**
 * Builds the web page when web/dist is missing or older than its sources, so `npm start` and the browser
 * tests always serve the current page. Also a command: `tsx web/ensure-built.ts [--force]`.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const webDir = fileURLToPath(new URL('.', import.meta.url));
export const webDistDir = join(webDir, 'dist');
const sources = ['index.html', 'vite.config.ts', 'src'].map((name) => join(webDir, name));

async function newestMtime(path: string): Promise<number> {
  const info = await stat(path);
  if (!info.isDirectory()) return info.mtimeMs;
  const entries = await readdir(path);
  const times = await Promise.all(entries.map((entry) => newestMtime(join(path, entry))));
  return Math.max(info.mtimeMs, ...times);
}

export async function isWebBuildStale(): Promise<boolean> {
  const built = await stat(join(webDistDir, 'index.html')).catch(() => undefined);
  if (!built) return true;
  const times = await Promise.all(sources.map(newestMtime));
  return Math.max(...times) > built.mtimeMs;
}

/** Returns the folder to serve. Vite is imported only when a build is needed. */
export async function ensureWebBuilt(options: { force?: boolean } = {}): Promise<string> {
  if (options.force || (await isWebBuildStale())) {
    const { build } = await import('vite');
    await build({ configFile: join(webDir, 'vite.config.ts'), logLevel: 'warn' });
  }
  return webDistDir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = await ensureWebBuilt({ force: process.argv.includes('--force') });
  console.log(`web page built in ${dir}`);
}
