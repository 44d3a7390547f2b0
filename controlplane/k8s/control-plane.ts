// The Kubernetes side of the control plane, wired: the pipeline on a KubernetesProvider, the status writer
// following the pipeline's statuses and reading the provider's informer cache, the Gateway provisioner following
// its snapshots (when given a proxy image), and the leader elector gating both writers. Every piece is a runner
// for the runtime's Supervisor (in `runners`, in start order).
import type { Logger } from 'pino';
import { Pipeline } from '../runtime/pipeline.ts';
import type { Runner } from '../runtime/runner.ts';
import { DEFAULT_CONTROLLER_NAME, type TranslateOptions } from '../translate/types.ts';
import type { KubeClient } from './client.ts';
import { LeaderElector, type LeaderElectorOptions } from './leader.ts';
import { KubernetesProvider, type KubernetesProviderOptions } from './provider.ts';
import { GatewayProvisioner, type GatewayProvisionerOptions } from './provisioner.ts';
import { StatusWriter, type StatusWriterOptions } from './status-writer.ts';

export interface KubernetesControlPlaneOptions {
  client: KubeClient;
  /** Namespace of the leader-election Lease (the control plane's own). */
  namespace: string;
  /** This replica's identity in the Lease. */
  identity?: string;
  translateOptions?: TranslateOptions;
  logger?: Logger;
  provider?: Omit<Partial<KubernetesProviderOptions>, 'client' | 'logger'>;
  writer?: Omit<Partial<StatusWriterOptions>, 'client' | 'logger' | 'leader' | 'cache' | 'controllerName'>;
  /** Lease settings, or false to write status without an election (a single replica). */
  leader?: Omit<Partial<LeaderElectorOptions>, 'client' | 'logger' | 'namespace' | 'identity'> | false;
  /**
   * Gateway provisioning (a Deployment and Service per Gateway of weft's class): on when given, with at least the
   * proxy image (`weft controlplane --proxy-image`). The control plane's namespace, controller name and trust domain
   * come from the options above.
   */
  provisioner?: Omit<GatewayProvisionerOptions, 'client' | 'logger' | 'leader' | 'cache' | 'controllerName'>;
}

export interface KubernetesControlPlane {
  pipeline: Pipeline;
  writer: StatusWriter;
  provisioner: GatewayProvisioner | undefined;
  leader: LeaderElector | undefined;
  /** The provider of the pipeline's current run (a new one after each restart). */
  readonly provider: KubernetesProvider | undefined;
  /** provider, translator, status writer, provisioner, leader elector: add them to a Supervisor in this order. */
  runners: Runner[];
}

export function kubernetesControlPlane(options: KubernetesControlPlaneOptions): KubernetesControlPlane {
  // A static Gateway address is bound once the provisioned Service carries it, not merely because it is usable.
  const o = { ...options, translateOptions: { gatewayAddresses: 'service' as const, ...options.translateOptions } };
  const controllerName = o.translateOptions?.controllerName ?? DEFAULT_CONTROLLER_NAME;
  const leader =
    o.leader === false
      ? undefined
      : new LeaderElector({
          client: o.client,
          namespace: o.namespace,
          ...(o.identity ? { identity: o.identity } : {}),
          ...(o.logger ? { logger: o.logger } : {}),
          ...o.leader,
        });
  const writer = new StatusWriter({
    client: o.client,
    controllerName,
    ...(leader ? { leader } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
    ...o.writer,
  });
  const provisioner = o.provisioner
    ? new GatewayProvisioner({
        client: o.client,
        controllerName,
        controlPlaneNamespace: o.namespace,
        ...(o.translateOptions?.trustDomain ? { trustDomain: o.translateOptions.trustDomain } : {}),
        ...(o.translateOptions.usableAddresses ? { usableAddresses: o.translateOptions.usableAddresses } : {}),
        ...(leader ? { leader } : {}),
        ...(o.logger ? { logger: o.logger } : {}),
        ...o.provisioner,
      })
    : undefined;
  let provider: KubernetesProvider | undefined;
  const pipeline = new Pipeline({
    provider: () => {
      provider = new KubernetesProvider({ client: o.client, ...(o.logger ? { logger: o.logger } : {}), ...o.provider });
      writer.setCache(provider);
      provisioner?.setCache(provider);
      return provider;
    },
    ...(o.translateOptions ? { translateOptions: o.translateOptions } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
  });
  writer.attach(pipeline.statuses);
  provisioner?.attach(pipeline.snapshots);
  return {
    pipeline,
    writer,
    provisioner,
    leader,
    get provider() {
      return provider;
    },
    runners: [...pipeline.runners, writer, ...(provisioner ? [provisioner] : []), ...(leader ? [leader] : [])],
  };
}
