// The dashboard's build: served by Fluxbase at /dashboard/ from the Python package.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/dashboard/",
  build: {
    outDir: "../server/fluxbase/dashboard_ui/static",
    emptyOutDir: true,
    assetsDir: "assets",
    // No inline polyfill script: the page's CSP allows scripts from this origin only.
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: "es2022",
  },
});
