import type { IndexIdentity } from './ports.ts';

/** Vectors of two identities are not comparable: an index holds one. */
export function sameIdentity(a: IndexIdentity, b: IndexIdentity): boolean {
  return a.model === b.model && a.profile === b.profile && a.dimension === b.dimension;
}

export function describeIdentity({ model, profile, dimension }: IndexIdentity): string {
  return `model '${model}' (profile ${profile}, ${dimension} dimensions)`;
}
