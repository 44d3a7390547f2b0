import test from 'ava';
import { compileMatchRegex, REGEX_MAX_LENGTH, RegexError, regexProblem } from '../../../sidecar/config/index.ts';

/** The compiled pattern matches every one of `yes` and none of `no`. */
function matches(t: import('ava').ExecutionContext, source: string, yes: string[], no: string[]) {
  const re = compileMatchRegex(source);
  for (const s of yes) t.true(re.test(s), `${source} should match ${JSON.stringify(s)}`);
  for (const s of no) t.false(re.test(s), `${source} should not match ${JSON.stringify(s)}`);
}

test('full-match semantics: the pattern must match the whole value', (t) => {
  matches(t, '/api/[0-9]+', ['/api/1', '/api/123'], ['/api/', '/api/1/x', 'x/api/1', '/api/1\n']);
  matches(t, 'a|b', ['a', 'b'], ['ab', 'xa', 'bx']);
  matches(t, '', [''], ['x']);
  // The value's own anchors are harmless.
  matches(t, '^abc$', ['abc'], ['xabc']);
});

test('accepted RE2 constructs', (t) => {
  matches(t, '(?:ab)+c?', ['ab', 'ababc'], ['abca']);
  matches(t, 'a{2}b{1,}c{1,3}', ['aabc', 'aabbbccc'], ['abc', 'aabcccc']);
  matches(t, 'a*?b+?c??', ['b', 'aabbc'], ['aacc']);
  matches(t, '[a-c]+[^0-9]\\d\\D\\w\\W', ['abc-1x_!'], ['abc-1x_a']);
  matches(t, '\\bfoo\\B.', ['fooo'], ['foo!']);
  matches(t, 'a.c', ['abc'], ['a\nc']);
  matches(t, '\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\\\', ['.*+?()[]{}|^$\\'], []);
  // Escaped punctuation is itself, even where JS's unicode mode would refuse the escape.
  matches(t, '\\#\\-\\_\\/\\"\\@', ['#-_/"@'], []);
  matches(t, '\\x41\\x{42}\\x{1F600}\\0\\012', ['AB😀\u0000\n'], []);
  matches(t, '\\a\\f\\t\\n\\r\\v', ['\u0007\f\t\n\r\v'], []);
  matches(t, '\\pL+\\p{Nd}\\PL', ['Éa1!'], ['Éa1b']);
  matches(t, '\\p{Greek}+\\p{^Greek}', ['αβx'], ['αβγ']);
  matches(t, '[[:alpha:]]+[[:digit:][:space:]]', ['ab1', 'ab '], ['ab!']);
  matches(t, '\\Qa.b*\\E+', ['a.b*', 'a.b**'], ['axb']);
  matches(t, '\\Aab\\z', ['ab'], ['abc']);
  matches(t, '(?i:ab)c', ['ABc', 'abc'], ['abC']);
  matches(t, '(?s:a.b)', ['a\nb'], []);
  matches(t, '(?m)^a$\\n^b$', ['a\nb'], ['a\nc']);
  matches(t, '😀+', ['😀😀'], ['😀\ud83d']);
  matches(t, 'x{,3}', ['x{,3}'], ['xxx']);
  matches(t, 'a{', ['a{'], []);
});

test('RE2 bracket rules: a leading ] is a literal; \\s is ASCII whitespace', (t) => {
  matches(t, '[]a]+', [']a]'], ['b']);
  matches(t, '[^]a]', ['b'], [']', 'a']);
  matches(t, '\\s', [' ', '\t', '\n'], ['\u00a0', '\u2003']);
  matches(t, '[\\s,]', [',', ' '], ['\u00a0']);
});

test('a leading (?i) becomes the i flag', (t) => {
  const re = compileMatchRegex('(?i)abc');
  t.true(re.flags.includes('i'));
  t.true(re.test('AbC'));
  t.true(compileMatchRegex('(?is)a.c').test('A\nC'));
  t.false(compileMatchRegex('abc').test('ABC'));
});

test('(?P<name>…) is translated to a JS named group', (t) => {
  const re = compileMatchRegex('/users/(?P<id>[0-9]+)/(?<tab>[a-z]+)');
  t.deepEqual({ ...re.exec('/users/42/posts')?.groups }, { id: '42', tab: 'posts' });
});

test('the u flag is used when the pattern allows it', (t) => {
  t.true(compileMatchRegex('a.b').flags.includes('u'));
  t.true(compileMatchRegex('.').test('😀'));
});

const rejected: [string, string][] = [
  ['a(?=b)', 'lookahead (?='],
  ['a(?!b)', 'lookahead (?!'],
  ['(?<=a)b', 'lookbehind (?<='],
  ['(?<!a)b', 'lookbehind (?<!'],
  ['(a)\\1', 'backreference \\1'],
  ['(?<n>a)\\k<n>', 'backreference \\k'],
  ['(?P<n>a)(?P=n)', 'backreference (?P=name)'],
  ['(a)\\g1', 'backreference \\g'],
  ['(?>a+)', 'atomic group'],
  ['a*+', 'possessive'],
  ['a++', 'possessive'],
  ['a**', 'repeated quantifiers'],
  ['a{2}{3}', 'repeated quantifiers'],
  ['(?#note)a', 'comment group'],
  ['(?|(a)|(b))', 'branch reset'],
  ['(?(1)a|b)', 'conditional'],
  ['(a(?R)?b)', 'recursion'],
  ['(?P>n)', 'recursion'],
  ['(?U)a+', 'ungreedy flag U'],
  ['(?x)a', 'unknown flag "x"'],
  ['a(?i)b', 'only accepted at the start'],
  ['(?-i)a', 'turns flags off'],
  ['\\Z', 'escape \\Z'],
  ['\\cA', 'escape \\c'],
  ['\\u0041', 'escape \\u'],
  ['\\C', 'escape \\C'],
  ['\\e', 'escape \\e'],
  ['\\h', 'escape \\h'],
  ['\\R', 'escape \\R'],
  ['\\X', 'escape \\X'],
  ['a\\', 'trailing backslash'],
  ['[\\b]', '\\b inside a character class'],
  ['[[:^alpha:]]', 'negated POSIX class'],
  ['[[:foo:]]', 'unknown POSIX class'],
  ['[\\d-z]', 'range cannot start at a class escape'],
  ['[a-\\d]', 'range cannot end at a class escape'],
  ['\\p{Klingon}', 'unknown Unicode class'],
  ['\\pX', 'unknown Unicode class'],
  ['a{1001}', 'repetition count 1001 is above 1000'],
  ['(a{10}){101}', 'repetition count 1010 is above 1000'],
  ['a{3,2}', 'max below min'],
  ['*a', 'nothing to repeat'],
  ['(|*)', 'nothing to repeat'],
  ['(a', 'missing closing )'],
  ['a)', 'unbalanced parenthesis'],
  ['[a', 'missing closing ]'],
  ['(?<a>x)(?<a>y)', 'duplicate capture group name'],
  ['(?P<1a>x)', 'invalid capture group name'],
  ['[z-a]', 'Range out of order'],
];

for (const [source, reason] of rejected) {
  test(`rejects ${JSON.stringify(source)}: ${reason}`, (t) => {
    const err = t.throws(() => compileMatchRegex(source), { instanceOf: RegexError });
    t.is(err?.code, 'WEFT_ERR_REGEX');
    t.is(err?.pattern, source);
    t.true(err?.reason.includes(reason), `reason ${JSON.stringify(err?.reason)} lacks ${reason}`);
    t.true(err?.message.includes(err.reason));
    t.is(regexProblem(source), err?.reason);
  });
}

test('pattern length is capped', (t) => {
  t.is(regexProblem('a'.repeat(REGEX_MAX_LENGTH)), undefined);
  const problem = regexProblem('a'.repeat(REGEX_MAX_LENGTH + 1));
  t.true(problem?.includes(`longer than ${REGEX_MAX_LENGTH} characters`));
});

test('regexProblem is undefined for an accepted pattern', (t) => {
  t.is(regexProblem('/api/v[12]/(?P<rest>.*)'), undefined);
});

test('counted repetitions up to the cap are accepted, nested ones multiply', (t) => {
  t.is(regexProblem('a{1000}'), undefined);
  t.is(regexProblem('(a{10}){100}'), undefined);
  t.is(regexProblem('(a{10})*(b{100}){10}'), undefined);
  t.true(regexProblem('((a{10}){10}){11}')?.includes('above 1000'));
});
