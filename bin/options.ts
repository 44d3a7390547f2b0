// Parsers of option values shared by the weft subcommands (commander's argParser): a bad value is a usage error
// (exit 2) that names what was expected.
import { InvalidArgumentError, type Option } from 'commander';

/** A TCP port, 0 (any free port) included. */
export function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a port number');
  return n;
}

/** An http:// or https:// URL, kept as written. */
export function httpUrl(value: string): string {
  try {
    const u = new URL(value);
    if (u.protocol === 'http:' || u.protocol === 'https:') return value;
  } catch {}
  throw new InvalidArgumentError('not an http(s) URL');
}

/** A share, 0 to 1. */
export function ratio(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1)
    throw new InvalidArgumentError('not a number in 0..1');
  return n;
}

/**
 * `option` stored under `name`: commander camel-cases `--root-ca-configmap` as `rootCaConfigmap`, and a command whose
 * options say `rootCaConfigMap` would silently never see the flag.
 */
export function camelCaseAttribute(option: Option, name: string): Option {
  option.attributeName = () => name;
  return option;
}

/** A name `valid` accepts (a Kubernetes name rule, a trust domain); `what` says in the error what was expected. */
export const named =
  (what: string, valid: (value: string) => boolean) =>
  (value: string): string => {
    if (!valid(value)) throw new InvalidArgumentError(`not a ${what}`);
    return value;
  };
