// `weft proxy` as its own process for the drain tests: runs runProxyCli on the given arguments and
// prints one JSON line with the bound addresses once it serves. Not a test file (no `.test.ts`).
import { runProxyCli } from '../../../sidecar/cli.ts';

const cli = await runProxyCli(process.argv.slice(2));
process.stdout.write(`${JSON.stringify({ admin: cli.proxy.addresses.admin.port })}\n`);
