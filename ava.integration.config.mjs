// Root-only integration suite: real namespaces, veths and taps, one test at a time.
// Run with `npm run test:integration` (ava --config ava.integration.config.mjs) as root.
export default {
  files: ['test/integration/**/*.test.ts'],
  typescript: {
    rewritePaths: { 'test/': 'dist/test/' },
    compile: 'tsc',
  },
  concurrency: 1,
  workerThreads: false,
  timeout: '180s',
};
