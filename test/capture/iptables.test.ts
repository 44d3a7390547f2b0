// The capture rule set as a pure function of the options, the removal derived from a listing, the
// iptables-restore input, and `weft proxy init-iptables --dry-run` (which needs neither root nor iptables).
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { CommanderError } from 'commander';
import { initArgs, injectSettings } from '../../injector/settings.ts';
import { runProxyCommand } from '../../sidecar/cli.ts';
import { CaptureError } from '../../sidecar/capture/errors.ts';
import { runInitIptablesCli } from '../../sidecar/capture/init-iptables-cli.ts';
import {
  buildCaptureRules,
  buildCleanupRules,
  buildFamilyRules,
  captureOptions,
  formatCommand,
  installCapture,
  restoreInput,
  splitRuleLine,
} from '../../sidecar/capture/iptables.ts';

const lines = (cmds: readonly (readonly string[])[]) => cmds.map(formatCommand);

test('the default IPv4 rule set, in order: chains first, hooks last', (t) => {
  t.deepEqual(lines(buildFamilyRules(captureOptions(), 'ipv4')), [
    'iptables -t nat -N WEFT_REDIRECT',
    'iptables -t nat -A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
    'iptables -t nat -N WEFT_IN_REDIRECT',
    'iptables -t nat -A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
    'iptables -t nat -N WEFT_INBOUND',
    'iptables -t nat -A WEFT_INBOUND -p tcp --dport 15008 -j RETURN',
    'iptables -t nat -A WEFT_INBOUND -p tcp --dport 15020 -j RETURN',
    'iptables -t nat -A WEFT_INBOUND -p tcp --dport 15001 -j RETURN',
    'iptables -t nat -A WEFT_INBOUND -p tcp --dport 15006 -j RETURN',
    'iptables -t nat -A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT',
    'iptables -t nat -N WEFT_OUTPUT',
    'iptables -t nat -A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -m owner --gid-owner 1337 -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -o lo -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -p tcp -j WEFT_REDIRECT',
    'iptables -t nat -A OUTPUT -p tcp -j WEFT_OUTPUT',
    'iptables -t nat -A PREROUTING -p tcp -j WEFT_INBOUND',
  ]);
});

test('IPv6 mirrors IPv4 with ip6tables; --no-ipv6 leaves it out', (t) => {
  const both = buildCaptureRules(captureOptions());
  const v4 = both.filter((c) => c[0] === 'iptables');
  const v6 = both.filter((c) => c[0] === 'ip6tables');
  t.deepEqual(
    v6.map((c) => c.slice(1)),
    v4.map((c) => c.slice(1)),
  );
  t.true(buildCaptureRules(captureOptions({ ipv6: false })).every((c) => c[0] === 'iptables'));
});

test('exclusions: ports and ranges, CIDRs by family, before the redirect; ports and ports the proxy owns', (t) => {
  const o = captureOptions({
    proxyUids: [1337, 1338],
    proxyGids: [],
    outboundPort: 16001,
    inboundPort: 16006,
    excludeInboundPorts: ['9090', '7000-7010'],
    excludeOutboundPorts: ['5432', '6379:6380', '5432'],
    excludeOutboundCidrs: ['10.0.0.0/8', '169.254.169.254', 'fd00::/8'],
  });
  const v4 = lines(buildFamilyRules(o, 'ipv4'));
  const v6 = lines(buildFamilyRules(o, 'ipv6'));
  const output = v4.filter((l) => l.includes('-A WEFT_OUTPUT'));
  t.deepEqual(output, [
    'iptables -t nat -A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -m owner --uid-owner 1338 -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -o lo -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -d 10.0.0.0/8 -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -d 169.254.169.254/32 -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -p tcp --dport 5432 -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -p tcp --dport 6379:6380 -j RETURN',
    'iptables -t nat -A WEFT_OUTPUT -p tcp -j WEFT_REDIRECT',
  ]);
  t.true(v6.includes('ip6tables -t nat -A WEFT_OUTPUT -d fd00::/8 -j RETURN'));
  t.false(v6.some((l) => l.includes('10.0.0.0/8')));
  t.deepEqual(
    v4.filter((l) => l.includes('-A WEFT_INBOUND') && l.includes('RETURN')).map((l) => l.split(' ')[8]),
    ['15008', '15020', '16001', '16006', '9090', '7000:7010'],
  );
  t.true(v4.includes('iptables -t nat -A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 16001'));
});

test('outbound-only capture has no inbound chains and no PREROUTING hook', (t) => {
  const v4 = lines(buildFamilyRules(captureOptions({ captureInbound: false }), 'ipv4'));
  t.false(v4.some((l) => l.includes('INBOUND') || l.includes('PREROUTING') || l.includes('IN_REDIRECT')));
  t.true(v4.includes('iptables -t nat -A OUTPUT -p tcp -j WEFT_OUTPUT'));
});

test('bad options are refused with WEFT_ERR_CAPTURE_OPTION, naming the value', (t) => {
  const bad = (o: Parameters<typeof captureOptions>[0], message: RegExp) =>
    t.throws(() => captureOptions(o), { instanceOf: CaptureError, code: 'WEFT_ERR_CAPTURE_OPTION', message });
  bad({ outboundPort: 0 }, /outbound port: 0/);
  bad({ inboundPort: 70000 }, /inbound port: 70000/);
  bad({ inboundPort: 15001 }, /both 15001/);
  bad({ proxyUids: [], proxyGids: [] }, /uid or gid/);
  bad({ proxyUids: [-1] }, /uid/);
  bad({ excludeOutboundPorts: ['http'] }, /"http"/);
  bad({ excludeInboundPorts: ['90:80'] }, /ends before it starts/);
  bad({ excludeOutboundCidrs: ['10.0.0.0/33'] }, /10\.0\.0\.0\/33/);
  bad({ excludeOutboundCidrs: ['example.com'] }, /example\.com/);
});

test('removal is derived from the listing: jumps into WEFT_ chains, then the chains; nothing else', (t) => {
  const listing = [
    '-P PREROUTING ACCEPT',
    '-P OUTPUT ACCEPT',
    '-N KUBE-SERVICES',
    '-N WEFT_OUTPUT',
    '-N WEFT_REDIRECT',
    '-A PREROUTING -j KUBE-SERVICES',
    '-A OUTPUT -p tcp -m comment --comment "added by hand" -j WEFT_OUTPUT',
    '-A OUTPUT -p tcp -j WEFT_OUTPUT',
    '-A WEFT_OUTPUT -p tcp -j WEFT_REDIRECT',
    '-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
  ].join('\n');
  t.deepEqual(lines(buildCleanupRules(listing, 'ipv6')), [
    "ip6tables -t nat -D OUTPUT -p tcp -m comment --comment 'added by hand' -j WEFT_OUTPUT",
    'ip6tables -t nat -D OUTPUT -p tcp -j WEFT_OUTPUT',
    'ip6tables -t nat -F WEFT_OUTPUT',
    'ip6tables -t nat -F WEFT_REDIRECT',
    'ip6tables -t nat -X WEFT_OUTPUT',
    'ip6tables -t nat -X WEFT_REDIRECT',
  ]);
  t.deepEqual(buildCleanupRules('-P OUTPUT ACCEPT\n-N OTHER\n-A OUTPUT -j OTHER\n', 'ipv4'), []);
  t.deepEqual(splitRuleLine('-A X -m comment --comment "a \\"b\\" c" -j Y'), [
    '-A',
    'X',
    '-m',
    'comment',
    '--comment',
    'a "b" c',
    '-j',
    'Y',
  ]);
});

test('iptables-restore input: one nat transaction, quoting what needs it', (t) => {
  t.is(
    restoreInput([
      ['iptables', '-t', 'nat', '-D', 'OUTPUT', '-m', 'comment', '--comment', 'a "b"', '-j', 'WEFT_OUTPUT'],
      ['iptables', '-t', 'nat', '-N', 'WEFT_OUTPUT'],
    ]),
    '*nat\n-D OUTPUT -m comment --comment "a \\"b\\"" -j WEFT_OUTPUT\n-N WEFT_OUTPUT\nCOMMIT\n',
  );
});

test('init-iptables --dry-run prints the removal, then the rules, and changes nothing', async (t) => {
  const out: string[] = [];
  await runInitIptablesCli(
    [
      '--proxy-uid',
      '1337',
      '--outbound-port',
      '15001',
      '--inbound-port',
      '15006',
      '--exclude-inbound-ports',
      '9090,9091',
      '--exclude-outbound-ports',
      '5432',
      '--exclude-outbound-cidrs',
      '10.96.0.1/32',
      '--exclude-outbound-cidrs',
      'fd00::1',
      '--dry-run',
    ],
    { write: (l) => out.push(l) },
  );
  const install = out.indexOf('# install');
  t.true(install > 0);
  t.true(out.slice(0, install).includes('iptables -t nat -D OUTPUT -p tcp -j WEFT_OUTPUT'));
  t.deepEqual(
    out.slice(install + 1),
    lines(
      buildCaptureRules(
        captureOptions({
          excludeInboundPorts: ['9090', '9091'],
          excludeOutboundPorts: ['5432'],
          excludeOutboundCidrs: ['10.96.0.1/32', 'fd00::1'],
        }),
      ),
    ),
  );
  const cleanup: string[] = [];
  await runInitIptablesCli(['--cleanup', '--dry-run', '--no-ipv6'], { write: (l) => cleanup.push(l) });
  t.true(cleanup.length > 0 && cleanup.every((l) => l.startsWith('iptables -t nat -')));
});

test('init-iptables: the gid defaults to the uid; usage errors are commander errors', async (t) => {
  const out: string[] = [];
  await runInitIptablesCli(['--proxy-uid', '2000', '--dry-run', '--no-ipv6'], { write: (l) => out.push(l) });
  t.true(out.includes('iptables -t nat -A WEFT_OUTPUT -m owner --gid-owner 2000 -j RETURN'));
  await t.throwsAsync(runInitIptablesCli(['--outbound-port', 'x', '--dry-run'], { write: () => {} }), {
    instanceOf: CommanderError,
  });
  await t.throwsAsync(runInitIptablesCli(['--exclude-outbound-cidrs', 'nope', '--dry-run'], { write: () => {} }), {
    instanceOf: CaptureError,
  });
});

test('weft proxy init-iptables goes through runProxyCommand and resolves without a proxy', async (t) => {
  const write = process.stdout.write;
  const out: string[] = [];
  process.stdout.write = ((chunk: string) => {
    out.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  try {
    t.is(await runProxyCommand(['init-iptables', '--dry-run', '--no-ipv6']), undefined);
  } finally {
    process.stdout.write = write;
  }
  t.true(out.join('').includes('iptables -t nat -A OUTPUT -p tcp -j WEFT_OUTPUT'));
});

test('changing iptables without root is refused with WEFT_ERR_CAPTURE_NOT_ROOT', async (t) => {
  if (process.getuid?.() !== 0) {
    await t.throwsAsync(installCapture(captureOptions()), { code: 'WEFT_ERR_CAPTURE_NOT_ROOT' });
    return;
  }
  // As root: the same call from a child running as uid 1337.
  const script = `import('${new URL('../../sidecar/capture/iptables.ts', import.meta.url).pathname}').then((m) =>
    m.installCapture(m.captureOptions()).then(() => console.log('installed'), (e) => console.log(e.code)))`;
  const out = execFileSync(
    'setpriv',
    ['--reuid', '1337', '--regid', '1337', '--clear-groups', process.execPath, '-e', script],
    {
      encoding: 'utf8',
    },
  );
  t.is(out.trim(), 'WEFT_ERR_CAPTURE_NOT_ROOT');
});

test('the injector’s init-container command line is one this CLI takes', async (t) => {
  const settings = injectSettings({ version: '0.1.0-test' });
  const argv = initArgs(settings, {
    inboundPorts: [9090],
    outboundPorts: [5432],
    outboundCidrs: ['169.254.169.254/32'],
  });
  t.deepEqual(argv.slice(0, 2), ['proxy', 'init-iptables']);
  const out: string[] = [];
  await runInitIptablesCli([...argv.slice(2), '--dry-run'], { write: (l) => out.push(l) });
  t.true(out.includes('iptables -t nat -A WEFT_INBOUND -p tcp --dport 9090 -j RETURN'));
  t.true(out.includes('iptables -t nat -A WEFT_OUTPUT -p tcp --dport 5432 -j RETURN'));
  t.true(out.includes('iptables -t nat -A WEFT_OUTPUT -d 169.254.169.254/32 -j RETURN'));
  t.true(out.includes(`iptables -t nat -A WEFT_OUTPUT -m owner --uid-owner ${settings.proxyUid} -j RETURN`));
});
