// After `vite build`: a gzip twin of each script and stylesheet, which Fluxbase (aiohttp's
// FileResponse) sends to browsers that accept gzip.  Built once here, never at request time.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const assets = new URL("../../server/fluxbase/dashboard_ui/static/assets/", import.meta.url).pathname;
for (const name of readdirSync(assets)) {
  if (!/\.(js|css|svg)$/.test(name)) continue;
  const path = join(assets, name);
  writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
}
