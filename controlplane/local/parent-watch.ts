// Children of `weft local` end with it, even when it is killed outright (SIGKILL leaves no chance to signal them):
// each child gets a pipe as stdin and the env WEFT_LOCAL_PARENT=1, and treats the end of that pipe — which the
// kernel closes when the parent dies — as a request to stop.

/** Env var `weft local` sets on its children. */
export const PARENT_WATCH_ENV = 'WEFT_LOCAL_PARENT';

/** Calls `stop` once when stdin ends, if this process was started by `weft local`; otherwise does nothing. */
export function exitWithParent(stop: () => void): void {
  if (process.env[PARENT_WATCH_ENV] !== '1') return;
  let called = false;
  const once = () => {
    if (called) return;
    called = true;
    stop();
  };
  process.stdin.on('end', once);
  process.stdin.on('close', once);
  process.stdin.on('error', once);
  process.stdin.resume();
}
