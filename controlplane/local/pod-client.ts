// The workload's side of `weft local curl` with --netns: run inside a pod's network namespace (`ip netns exec`), it
// sends plain HTTP to the URL as any app would — the name from the pod's hosts file, the connection captured by
// iptables when the pod has a sidecar — and prints the response (or the tally of --count) as JSON on stdout.
// Usage: node pod-client.ts '<PodClientJob as JSON>'.
import { directTarget, type PodClientJob, type PodClientResult, send, tallyRequests, targetUrl } from './curl.ts';

async function main(): Promise<PodClientResult> {
  const job = JSON.parse(process.argv[2] ?? '{}') as PodClientJob;
  const url = targetUrl(job);
  try {
    if (job.count !== undefined) return { tally: await tallyRequests(directTarget(url), url, job) };
    return { response: await send(directTarget(url), url, job) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

process.stdout.write(`${JSON.stringify(await main())}\n`);
