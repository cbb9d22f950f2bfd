#!/usr/bin/env node
// The `pic-search` command (package.json "bin", so `npx pic-search` works from any folder of the
// checkout): the TypeScript CLI run through tsx, as `npm run cli` runs it.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
