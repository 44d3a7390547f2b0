// The running mesh as `weft local up` describes it in `<state dir>/mesh.json`, rewritten on every change: how
// `weft local curl` (and anyone else) finds pods, their sidecars and the Gateways without asking the control plane.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LocalError } from './errors.ts';

export const DEFAULT_STATE_DIR = '.weft/local';
export const MESH_STATE_FILE = 'mesh.json';
/** Env var set on every child of a mesh: its state dir (how `weft local down` finds what a crashed run left). */
export const LOCAL_RUN_ENV = 'WEFT_LOCAL_STATE_DIR';

export interface MeshStatePod {
  namespace: string;
  name: string;
  ip: string;
  serviceAccount: string;
  /** `--netns`: the pod's network namespace (`ip netns exec NAME …` runs a command inside the pod). */
  netns?: string;
  workloads: { container: string; image: string; ports: number[]; h2cPorts: number[]; format: string; pid?: number }[];
  /** Present when the pod has a sidecar. */
  sidecar?: {
    proxyId: string;
    /** Where its outbound listener takes explicit-proxy requests. */
    outbound?: { address: string; port: number };
    adminPort?: number;
    pid?: number;
    configured: boolean;
  };
}

export interface MeshStateGateway {
  namespace: string;
  name: string;
  proxyId: string;
  address?: string;
  listeners: { name: string; protocol: string; port: number; localPort: number; hostnames: string[] }[];
  adminPort?: number;
  pid?: number;
  configured: boolean;
}

export interface MeshStateNetns {
  /** Everything made on the host starts with it: namespaces, the bridge, host chains (in capitals), /etc/netns dirs. */
  prefix: string;
  bridge: string;
  /** The bridge's address: the pods' default gateway, where the config push and the CA listen. */
  gateway: string;
  cidr: string;
  podCidr: string;
  serviceCidr: string;
}

export interface MeshState {
  /** The `weft local up` process. */
  pid: number;
  /** Present with `--netns`: what it made on this machine (`weft local down --prefix PREFIX` removes it). */
  netns?: MeshStateNetns;
  startedAt: string;
  updatedAt: string;
  /** The manifests directory. */
  dir: string;
  ready: boolean;
  /** Shift applied to ports below 1024 (0 as root). */
  portOffset: number;
  /** How proxies get their configs: config files rewritten on change, or the push server. */
  feed: 'file' | 'push';
  controlPlane: { push: string; ca: string; admin: string };
  pods: MeshStatePod[];
  gateways: MeshStateGateway[];
}

export async function writeMeshState(stateDir: string, state: MeshState): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const file = path.join(stateDir, MESH_STATE_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, file);
}

export async function readMeshState(stateDir: string): Promise<MeshState | undefined> {
  try {
    return JSON.parse(await readFile(path.join(stateDir, MESH_STATE_FILE), 'utf8')) as MeshState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The state of the mesh running from `stateDir`, or a LocalError saying there is none. */
export async function runningMesh(stateDir: string): Promise<MeshState> {
  const state = await readMeshState(stateDir);
  if (!state || !processAlive(state.pid)) {
    throw new LocalError(
      'WEFT_ERR_LOCAL_NOT_RUNNING',
      `no weft local is running from ${stateDir} (start one with "weft local up DIR", or pass its --state-dir)`,
    );
  }
  return state;
}
