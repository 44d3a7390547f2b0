// The injection as an RFC 6902 JSON Patch: applied to the original it gives exactly injectPod's result; an injected
// pod gives []; annotation keys with "/" are escaped as the RFC says.
import test from 'ava';
import { applyPatch, diff, injectionPatch, injectPod } from '../../injector/index.ts';
import { classic, native, pod, probedPod } from './support.ts';

for (const [form, s] of [
  ['native', native()],
  ['classic', classic()],
] as const) {
  test(`${form}: the patch turns the pod into injectPod's result`, (t) => {
    for (const input of [pod(), probedPod(), { spec: { containers: [{ name: 'a' }] } }]) {
      const patch = injectionPatch(input, s);
      t.true(patch.length > 0);
      // What goes on the wire is JSON: nothing in the patch may be lost by serialising it.
      t.deepEqual(JSON.parse(JSON.stringify(patch)), patch);
      t.deepEqual(applyPatch(input, patch), injectPod(input, s));
    }
  });

  test(`${form}: an injected pod yields an empty patch`, (t) => {
    t.deepEqual(injectionPatch(injectPod(probedPod(), s), s), []);
  });
}

test('annotation keys are escaped per RFC 6901 (/ as ~1)', (t) => {
  const patch = injectionPatch(pod(), native());
  t.true(patch.some((op) => op.op === 'add' && op.path === '/metadata/annotations/weft.dev~1injected'));
  t.false(patch.some((op) => op.path.includes('weft.dev/injected')));
});

test('diff of equal documents is empty; of different ones, applicable', (t) => {
  t.deepEqual(diff({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }), []);
  const from = { a: [1, 2, 3], 'k/x': { 'y~z': 1 } };
  const to = { a: [0, 1, 2, 3], 'k/x': { 'y~z': 2 }, c: null };
  t.deepEqual(applyPatch(from, diff(from, to)), to);
});

test('applyPatch refuses a patch that does not apply', (t) => {
  t.throws(() => applyPatch({ a: 1 }, [{ op: 'replace', path: '/b/c', value: 1 }]));
});
