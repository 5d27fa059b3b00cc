// Unit tests: ava runs the compiled tests in dist/ (@ava/typescript runs `tsc`
// first), because worker threads cannot load .ts on Node 20.
export default {
  typescript: {
    rewritePaths: { 'test/': 'dist/test/' },
    compile: 'tsc',
  },
  files: ['test/unit/**/*.test.ts'],
  timeout: '60s',
};
