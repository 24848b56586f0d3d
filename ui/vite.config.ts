import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The build lands in the Python package (kray/webui) so the server ships it: no Node.js at run time.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../kray/webui",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8080" },
  },
});
