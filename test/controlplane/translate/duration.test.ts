// parseDuration implements the Gateway API Duration of GEP-2257: one to four `<digits><unit>` groups, at most five
// digits each, units h, m, s, ms; anything else (Go-only forms included) is not a Duration.
import test from 'ava';
import { parseDuration } from '../../../controlplane/translate/duration.ts';

const valid: [string, number][] = [
  ['0s', 0],
  ['0ms', 0],
  ['1ms', 1],
  ['500ms', 500],
  ['1s', 1_000],
  ['10s', 10_000],
  ['1m', 60_000],
  ['1h', 3_600_000],
  ['1m30s', 90_000],
  ['1h30m', 5_400_000],
  ['1h1m1s1ms', 3_661_001],
  ['2s500ms', 2_500],
  ['99999s', 99_999_000],
  ['99999h', 99_999 * 3_600_000],
  ['00001s', 1_000],
  // GEP-2257 does not forbid repeating a unit; Go's time.ParseDuration sums the groups.
  ['1s1s', 2_000],
  ['1ms1m', 60_001],
];

const invalid: [string, string][] = [
  ['', 'empty'],
  ['1', 'no unit'],
  ['s', 'no number'],
  ['ms', 'no number before ms'],
  ['1.5s', 'fractions are Go-only'],
  ['1us', 'microseconds are Go-only'],
  ['1µs', 'microseconds are Go-only'],
  ['1ns', 'nanoseconds are Go-only'],
  ['1d', 'days are not a unit'],
  ['1S', 'units are lower case'],
  ['1H', 'units are lower case'],
  ['-1s', 'no sign'],
  ['+1s', 'no sign'],
  ['1 s', 'no spaces'],
  [' 1s', 'no leading space'],
  ['1s ', 'no trailing space'],
  ['100000s', 'at most five digits'],
  ['1h1m1s1ms1h', 'at most four groups'],
  ['1m5', 'trailing digits without a unit'],
  ['1sms', 'a unit without a number'],
  ['PT1S', 'ISO 8601 is not a Duration'],
];

for (const [text, ms] of valid)
  test(`parseDuration("${text}") is ${ms} ms`, (t) => {
    t.is(parseDuration(text), ms);
  });

for (const [text, why] of invalid)
  test(`parseDuration(${JSON.stringify(text)}) is undefined: ${why}`, (t) => {
    t.is(parseDuration(text), undefined);
  });
