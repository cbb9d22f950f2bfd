/** Words the browser tests check verbatim. */
export const SEEDED_WARNING =
  'Seeded (random) weights in use — results are only meaningful for near-duplicates; see README to bring pretrained VGG16';
