// Shared set-up of the tests that run `weft local` in this process (startLocalMesh). Not a test file.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LocalMeshOptions } from '../../controlplane/local/mesh.ts';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A mesh of the manifests in `dir` with its state in `stateDir`, every control-plane port free. */
export function testMeshOptions(
  dir: string,
  stateDir: string,
  extra: Partial<LocalMeshOptions> = {},
): LocalMeshOptions {
  return {
    dir,
    stateDir,
    portOffset: 0,
    pushPort: 0,
    caPort: 0,
    adminPort: 0,
    stopGraceMs: 2000,
    ...extra,
  };
}
