/** Names shared between package.json and the sources, checked by manifest.test.ts. */
export const TRACK_BY_KEYS_CONTEXT_NAME = "zi.trackPartialAcceptByKeys";
