// Errors of the ProxyConfig contract. Codes are stable: callers (the push client, `weft
// proxy-config`, the translator's status writer) branch on `code`, never on the message.

/** One problem found in a ProxyConfig: where (a readable path) and why. */
export interface ConfigIssue {
  /** e.g. `routeTables["shop/web:80"].virtualHosts[0].routes[2].match.path.value`; `(root)` for the document. */
  path: string;
  reason: string;
}

/** How many issues a ConfigError's message spells out; all of them are in `issues`. */
const MESSAGE_ISSUES = 5;

/** The config does not satisfy the schema or the cross-reference rules; nothing of it may be applied. */
export class ConfigError extends Error {
  readonly code = 'WEFT_ERR_CONFIG_INVALID';
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    const shown = issues.slice(0, MESSAGE_ISSUES).map((i) => `${i.path}: ${i.reason}`);
    const more = issues.length > MESSAGE_ISSUES ? `; and ${issues.length - MESSAGE_ISSUES} more` : '';
    const count = `${issues.length} issue${issues.length === 1 ? '' : 's'}`;
    super(`invalid ProxyConfig (${count}): ${shown.join('; ')}${more}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** The config speaks an apiVersion this proxy does not know; it keeps its last good config. */
export class ConfigVersionError extends Error {
  readonly code = 'WEFT_ERR_CONFIG_VERSION';
  readonly apiVersion: string;
  readonly supported: readonly string[];

  constructor(apiVersion: string, supported: readonly string[]) {
    super(
      `unsupported ProxyConfig apiVersion ${JSON.stringify(apiVersion)}; this proxy supports ${supported
        .map((v) => JSON.stringify(v))
        .join(', ')}`,
    );
    this.name = 'ConfigVersionError';
    this.apiVersion = apiVersion;
    this.supported = supported;
  }
}

/** A RegularExpression match outside weft's dialect (see regex.ts). */
export class RegexError extends Error {
  readonly code = 'WEFT_ERR_REGEX';
  readonly pattern: string;
  readonly reason: string;

  constructor(pattern: string, reason: string) {
    const shown = pattern.length > 80 ? `${pattern.slice(0, 80)}…` : pattern;
    super(`invalid regular expression ${JSON.stringify(shown)}: ${reason}`);
    this.name = 'RegexError';
    this.pattern = pattern;
    this.reason = reason;
  }
}

/** The app probes handed over by the injector (WEFT_APP_PROBES, `--app-probes`) cannot be used. */
export class AppProbesError extends Error {
  readonly code = 'WEFT_ERR_APP_PROBES';

  constructor(message: string) {
    super(message);
    this.name = 'AppProbesError';
  }
}
