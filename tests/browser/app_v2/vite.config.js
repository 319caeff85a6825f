import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// tests/test_browser.py runs `vite build` once per session into the git-ignored dist/
// and serves it from an origin of its own; relative asset URLs keep it servable anywhere.
export default defineConfig({
  base: "./",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 4096 },
  logLevel: "warn",
});
