// The one regular-expression dialect weft accepts for Gateway API `RegularExpression` matches
// (path, header, query). The translator calls it to reject a route with a status condition, the
// validator to refuse a config, the proxy to build its matchers: all three must agree, so there is
// exactly one implementation.
//
// Why a dialect at all: the proxy matches with V8's backtracking engine, where a pattern from an
// application team runs against request data from anyone (ReDoS). Lookaround and backreferences
// have no linear-time algorithm and are the classic vectors; RE2 — what Envoy's safe_regex and most
// Gateway API implementations use — lacks them. So weft accepts RE2's syntax only (a subset of it:
// a few rarely used corners are refused rather than emulated), rewritten into an equivalent JS
// RegExp. A route then behaves as it would on other implementations, and the proxy can move to a
// linear-time engine without refusing routes it accepted before. What this does not do: make every
// accepted pattern linear under backtracking (`(a+)+` is valid RE2); the pattern length cap, RE2's
// counted-repetition cap and the proxy's header/URL size limits are what bound that remainder.
//
// Semantics are Envoy's: the pattern must match the whole value (anchored `^(?:…)$`).
import { RegexError } from './errors.ts';

/** Longest accepted pattern, in UTF-16 code units. */
export const REGEX_MAX_LENGTH = 1024;
/** Largest counted repetition, also as a product of nested ones (`(a{10}){200}` is 2000): RE2's limit. */
export const REGEX_MAX_REPEAT = 1000;

/** Compile a Gateway API RegularExpression match value; throws RegexError outside weft's dialect. */
export function compileMatchRegex(source: string): RegExp {
  const { body, flags, unicodeRequired } = translate(source);
  const anchored = `^(?:${body})$`;
  try {
    return new RegExp(anchored, `${flags}u`);
  } catch (err) {
    if (unicodeRequired) throw new RegexError(source, engineReason(err));
  }
  try {
    return new RegExp(anchored, flags);
  } catch (err) {
    throw new RegexError(source, engineReason(err));
  }
}

/** Why `source` is not an acceptable match regex, or undefined when it is. */
export function regexProblem(source: string): string | undefined {
  try {
    compileMatchRegex(source);
    return undefined;
  } catch (err) {
    if (err instanceof RegexError) return err.reason;
    throw err;
  }
}

function engineReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // V8: "Invalid regular expression: /^(?:…)$/u: Nothing to repeat" — the rewritten source is noise.
  return message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
}

// RE2's Unicode general categories (`\pL`, `\p{Lu}`); any other `\p{Name}` is a script.
const GENERAL_CATEGORIES = new Set(
  'C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs'.split(' '),
);
const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};
// RE2's \s is ASCII whitespace only; JS's also matches \v and Unicode spaces.
const RE2_SPACE = '\\t\\n\\f\\r ';
// Characters that JS accepts escaped with `\` in unicode mode (SyntaxCharacter and `/`); `-` only in a class.
const JS_ESCAPABLE = new Set('^$\\.*+?()[]{}|/');
const scriptNames = new Map<string, boolean>();
// `{n}`, `{n,}`, `{n,m}`; any other brace is a literal in RE2.
const COUNTED = /^\{(\d+)(,(\d*))?\}/;

interface Translation {
  body: string;
  flags: string;
  /** The rewrite uses `\p{…}` or `\u{…}`, which only mean that under the `u` flag. */
  unicodeRequired: boolean;
}

/** Nesting level: the largest counted-repetition product inside, and what a quantifier would apply to. */
interface Frame {
  maxRep: number;
  lastRep: number;
  canRepeat: boolean;
}

function translate(source: string): Translation {
  if (source.length > REGEX_MAX_LENGTH) {
    throw new RegexError(source, `pattern is longer than ${REGEX_MAX_LENGTH} characters (${source.length})`);
  }
  const fail = (reason: string): never => {
    throw new RegexError(source, reason);
  };
  const out: string[] = [];
  const stack: Frame[] = [{ maxRep: 1, lastRep: 1, canRepeat: false }];
  const groupNames = new Set<string>();
  let flags = '';
  let wrapMultiline = false;
  let unicodeRequired = false;
  let i = 0;

  const frame = () => stack[stack.length - 1];
  const atom = (text: string, rep = 1) => {
    out.push(text);
    const f = frame();
    f.lastRep = rep;
    f.maxRep = Math.max(f.maxRep, rep);
    f.canRepeat = true;
  };
  const assertion = (text: string) => {
    out.push(text);
    frame().canRepeat = false;
  };
  const quantified = (text: string, count: number) => {
    const f = frame();
    if (!f.canRepeat) fail(`quantifier ${text} has nothing to repeat`);
    let suffix = '';
    if (source[i] === '?') {
      suffix = '?';
      i++;
    }
    const next = source[i];
    if (next === '*' || next === '+' || next === '?' || (next === '{' && COUNTED.test(source.slice(i)))) {
      fail(`quantifier ${text}${suffix}${next} is not supported (possessive or repeated quantifiers are not RE2)`);
    }
    const rep = f.lastRep * count;
    if (rep > REGEX_MAX_REPEAT) {
      fail(`repetition count ${rep} is above ${REGEX_MAX_REPEAT} (nested counted repetitions multiply)`);
    }
    f.maxRep = Math.max(f.maxRep, rep);
    f.canRepeat = false;
    out.push(text + suffix);
  };

  /** The escape after a `\` (at `i`): its JS text; `assertion` for zero-width ones, `set` for classes. */
  const backslash = (inClass: boolean): { text: string; assertion?: boolean; set?: boolean } => {
    if (i >= source.length) fail('trailing backslash');
    const c = source[i++];
    const where = inClass ? ' inside a character class' : '';
    switch (c) {
      case 'd':
      case 'D':
      case 'w':
      case 'W':
        return { text: `\\${c}`, set: true };
      case 'f':
      case 't':
      case 'n':
      case 'r':
      case 'v':
        return { text: `\\${c}` };
      case 'a':
        return { text: '\\x07' };
      case 's':
        return { text: inClass ? RE2_SPACE : `[${RE2_SPACE}]`, set: true };
      case 'S':
        return { text: inClass ? '\\S' : `[^${RE2_SPACE}]`, set: true };
      case 'b':
      case 'B':
        if (inClass) fail(`\\${c}${where} is not supported`);
        return { text: `\\${c}`, assertion: true };
      case 'A':
        if (inClass) fail(`\\A${where} is not supported`);
        return { text: '(?<![\\s\\S])', assertion: true };
      case 'z':
        if (inClass) fail(`\\z${where} is not supported`);
        return { text: '(?![\\s\\S])', assertion: true };
      case 'x':
        return { text: hexEscape() };
      case '0': {
        let value = 0;
        for (let n = 0; n < 2 && /[0-7]/.test(source[i] ?? ''); n++) value = value * 8 + Number(source[i++]);
        return { text: `\\x${value.toString(16).padStart(2, '0')}` };
      }
      case 'p':
      case 'P':
        return { text: unicodeClass(c === 'P'), set: true };
      case 'k':
        return fail(`backreference \\k is not supported${where} (RE2 has no backreferences)`);
      case 'g':
        return fail(`backreference \\g is not supported${where} (RE2 has no backreferences)`);
      case 'Q':
        return fail(`\\Q…\\E${where} is not supported`);
      default:
        break;
    }
    if (c >= '1' && c <= '9') fail(`backreference \\${c} is not supported (RE2 has no backreferences)`);
    if (/[A-Za-z]/.test(c)) fail(`escape \\${c} is not supported (not in RE2's syntax)`);
    if (c.charCodeAt(0) >= 0x80) fail(`escape of non-ASCII character \\${c} is not supported`);
    // Escaped ASCII punctuation is itself. JS's unicode mode refuses needless escapes, so emit it bare.
    return { text: JS_ESCAPABLE.has(c) || (inClass && c === '-') ? `\\${c}` : c };
  };

  const hexEscape = (): string => {
    let value: number;
    if (source[i] === '{') {
      const m = /^\{([0-9A-Fa-f]{1,8})\}/.exec(source.slice(i));
      if (!m) fail('invalid \\x{…} escape');
      value = Number.parseInt(m![1], 16);
      i += m![0].length;
      if (value > 0x10ffff) fail(`\\x{${m![1]}} is beyond U+10FFFF`);
    } else {
      const m = /^[0-9A-Fa-f]{2}/.exec(source.slice(i));
      if (!m) fail('invalid \\x escape (two hex digits or \\x{…})');
      value = Number.parseInt(m![0], 16);
      i += 2;
    }
    if (value <= 0xff) return `\\x${value.toString(16).padStart(2, '0')}`;
    unicodeRequired = true;
    return `\\u{${value.toString(16)}}`;
  };

  const unicodeClass = (negated: boolean): string => {
    let name: string;
    if (source[i] === '{') {
      const end = source.indexOf('}', i);
      if (end < 0) fail('missing } in \\p{…}');
      name = source.slice(i + 1, end);
      i = end + 1;
      if (name.startsWith('^')) {
        negated = !negated;
        name = name.slice(1);
      }
    } else {
      name = source[i++] ?? '';
      if (!GENERAL_CATEGORIES.has(name)) fail(`unknown Unicode class \\p${name}`);
    }
    unicodeRequired = true;
    const p = negated ? 'P' : 'p';
    if (name === 'Any' || GENERAL_CATEGORIES.has(name)) return `\\${p}{${name}}`;
    if (!/^[A-Za-z_]+$/.test(name) || !isScript(name)) fail(`unknown Unicode class \\p{${name}}`);
    return `\\${p}{Script=${name}}`;
  };

  const charClass = () => {
    let text = '[';
    i++;
    if (source[i] === '^') {
      text += '^';
      i++;
    }
    // Ranges: a class escape (\d, \pL, [:alpha:]) cannot be an endpoint; JS without `u` would read
    // `[a-\d]` as three items, RE2 refuses it.
    let prev: 'none' | 'char' | 'set' = 'none';
    let rangeOpen = false;
    const item = (kind: 'char' | 'set', itemText: string) => {
      if (rangeOpen && kind === 'set')
        fail('a character class range cannot end at a class escape; write \\- for a literal -');
      prev = rangeOpen ? 'none' : kind;
      rangeOpen = false;
      text += itemText;
    };
    // RE2 (like POSIX) reads a `]` right after `[` or `[^` as a literal; JS would close an empty class.
    if (source[i] === ']') {
      i++;
      item('char', '\\]');
    }
    for (;;) {
      if (i >= source.length) fail('missing closing ] of a character class');
      const c = source[i];
      if (c === ']') {
        i++;
        break;
      }
      if (c === '-' && prev !== 'none' && source[i + 1] !== ']') {
        if (prev === 'set') fail('a character class range cannot start at a class escape; write \\- for a literal -');
        rangeOpen = true;
        text += '-';
        i++;
        continue;
      }
      if (c === '\\') {
        i++;
        const e = backslash(true);
        item(e.set ? 'set' : 'char', e.text);
        continue;
      }
      if (c === '[') {
        const m = /^\[:(\^?)([A-Za-z]+):\]/.exec(source.slice(i));
        if (m) {
          if (m[1]) fail(`negated POSIX class [:^${m[2]}:] is not supported`);
          const ranges = POSIX_CLASSES[m[2]];
          if (ranges === undefined) fail(`unknown POSIX class [:${m[2]}:]`);
          i += m[0].length;
          item('set', ranges);
        } else {
          i++;
          item('char', '\\[');
        }
        continue;
      }
      const cp = String.fromCodePoint(source.codePointAt(i)!);
      i += cp.length;
      item('char', cp);
    }
    atom(`${text}]`);
  };

  const group = () => {
    i++; // (
    if (source[i] !== '?') {
      out.push('(');
      stack.push({ maxRep: 1, lastRep: 1, canRepeat: false });
      return;
    }
    const rest = source.slice(i + 1);
    if (rest.startsWith(':')) {
      i += 2;
      out.push('(?:');
      stack.push({ maxRep: 1, lastRep: 1, canRepeat: false });
      return;
    }
    if (rest.startsWith('=') || rest.startsWith('!'))
      fail(`lookahead (?${rest[0]} is not supported (RE2 has no lookaround)`);
    if (rest.startsWith('<=') || rest.startsWith('<!')) {
      fail(`lookbehind (?${rest.slice(0, 2)} is not supported (RE2 has no lookaround)`);
    }
    if (rest.startsWith('P=')) fail('backreference (?P=name) is not supported (RE2 has no backreferences)');
    if (rest.startsWith('P>')) fail('recursion (?P>name) is not supported');
    if (rest.startsWith('P<') || rest.startsWith('<')) {
      const at = rest.startsWith('P') ? 2 : 1;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest.slice(at));
      if (!m) fail('invalid capture group name (letters, digits and _, not starting with a digit)');
      if (groupNames.has(m![1])) fail(`duplicate capture group name ${JSON.stringify(m![1])}`);
      groupNames.add(m![1]);
      i += 1 + at + m![0].length;
      out.push(`(?<${m![1]}>`);
      stack.push({ maxRep: 1, lastRep: 1, canRepeat: false });
      return;
    }
    if (rest.startsWith('>')) fail('atomic group (?> is not supported');
    if (rest.startsWith('#')) fail('comment group (?# is not supported');
    if (rest.startsWith('|')) fail('branch reset group (?| is not supported');
    if (rest.startsWith('(')) fail('conditional group (?( is not supported');
    if (/^(R|&|[+-]?[0-9])/.test(rest)) fail(`recursion or subroutine call (?${rest[0]} is not supported`);
    const m = /^([A-Za-z]*)(?:-([A-Za-z]*))?([:)])/.exec(rest);
    if (!m) fail(`unsupported group syntax (?${rest.slice(0, 1)}`);
    const [whole, on, off = '', end] = m!;
    for (const f of on + off) {
      if (f === 'U') fail('ungreedy flag U is not supported');
      if (!'ims'.includes(f)) fail(`unknown flag ${JSON.stringify(f)} (i, m and s are accepted)`);
    }
    if (on + off === '') fail('empty flag group');
    i += 1 + whole.length;
    if (end === ':') {
      // Same syntax as JS's regexp modifiers.
      out.push(`(?${on}${off ? `-${off}` : ''}:`);
      stack.push({ maxRep: 1, lastRep: 1, canRepeat: false });
      return;
    }
    if (m![2] !== undefined) fail(`flag group (?${whole.slice(0, -1)}) turns flags off; use (?-${off}:…)`);
    if (out.length > 0 || stack.length > 1) {
      fail(`inline flags (?${whole.slice(0, -1)}) are only accepted at the start of the pattern; use (?${on}:…)`);
    }
    for (const f of on) {
      if (f === 'm') wrapMultiline = true;
      else if (!flags.includes(f)) flags += f;
    }
  };

  while (i < source.length) {
    const c = source[i];
    switch (c) {
      case '\\': {
        i++;
        if (source[i] === 'Q') {
          // \Q…\E: literal text up to \E or the end, each character its own atom (as in RE2).
          const end = source.indexOf('\\E', i + 1);
          const text = source.slice(i + 1, end < 0 ? source.length : end);
          i = end < 0 ? source.length : end + 2;
          for (const ch of text) atom(JS_ESCAPABLE.has(ch) ? `\\${ch}` : ch);
          break;
        }
        const e = backslash(false);
        if (e.assertion) assertion(e.text);
        else atom(e.text);
        break;
      }
      case '[':
        charClass();
        break;
      case '(':
        group();
        break;
      case ')': {
        if (stack.length === 1) fail('unbalanced parenthesis: ) without (');
        i++;
        const inner = stack.pop()!;
        atom(')', inner.maxRep);
        break;
      }
      case '|':
        i++;
        out.push('|');
        frame().canRepeat = false;
        break;
      case '*':
      case '+':
      case '?':
        i++;
        quantified(c, 1);
        break;
      case '{': {
        const m = COUNTED.exec(source.slice(i));
        if (!m) {
          // Not a repetition: RE2 reads the brace literally (JS's unicode mode would refuse it).
          i++;
          atom('\\{');
          break;
        }
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' ? min : Number(m[3]);
        if (min > REGEX_MAX_REPEAT || max > REGEX_MAX_REPEAT) {
          fail(`repetition count ${Math.max(min, max)} is above ${REGEX_MAX_REPEAT}`);
        }
        if (m[3] !== undefined && m[3] !== '' && max < min) fail(`invalid repetition {${min},${max}}: max below min`);
        i += m[0].length;
        quantified(m[0], Math.max(min, max, 1));
        break;
      }
      case '}':
      case ']':
        i++;
        atom(`\\${c}`);
        break;
      case '^':
      case '$':
        i++;
        assertion(c);
        break;
      default: {
        const cp = String.fromCodePoint(source.codePointAt(i)!);
        i += cp.length;
        atom(cp);
      }
    }
  }
  if (stack.length > 1) fail('missing closing )');
  const body = out.join('');
  return { body: wrapMultiline ? `(?m:${body})` : body, flags, unicodeRequired };
}

function isScript(name: string): boolean {
  let known = scriptNames.get(name);
  if (known === undefined) {
    try {
      new RegExp(`\\p{Script=${name}}`, 'u');
      known = true;
    } catch {
      known = false;
    }
    scriptNames.set(name, known);
  }
  return known;
}
