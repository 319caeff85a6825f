// The vite config of both chat pages (see page.js); each page passes its own
// @vitejs/plugin-react, as this folder has no node_modules to resolve it from.
// tests/browser_support.py runs `vite build` once per session into the git-ignored
// dist/ and serves it from an origin of its own; relative asset URLs keep it servable
// anywhere.
export function chatPageConfig(react) {
  return {
    base: "./",
    plugins: [react()],
    build: { outDir: "dist", emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 4096 },
    logLevel: "warn",
  };
}
