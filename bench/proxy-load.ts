// The constant-rate load generator as a child of bench/run.ts (pinned to the load core): runs
// one job given as JSON in argv, tells the latency summary over IPC and exits.
import { reportFailures, tell } from './lib/child.ts';
import { type ConstantRateOptions, runConstantRate } from './lib/constant-rate.ts';

reportFailures();
const options = JSON.parse(process.argv[2] ?? '{}') as ConstantRateOptions;
const summary = await runConstantRate(options);
tell({ type: 'result', summary }, () => process.exit(0));
