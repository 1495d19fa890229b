/** The installers' facade: one step of the plan → the installer of its kind. */
import type { Step } from '../plan.js';
import type { InstallContext, StepOutcome } from './context.js';
import { installDebs } from './deb.js';
import { installFile } from './file.js';
import { installGem } from './gem.js';
import { dockerEngineAnswers, installImage } from './oci.js';

export type { InstallContext, StepOutcome } from './context.js';
export type { BlobSource } from './source.js';
export { extractTar } from './tar.js';
export { gemHome } from './gem.js';
export { layoutDir, splitImageRef } from './oci.js';

export function runStep(ctx: InstallContext, step: Step): Promise<StepOutcome> {
  switch (step.kind) {
    case 'deb':
      return installDebs(ctx, step.debs);
    case 'file':
      return installFile(ctx, step.artifact as Extract<typeof step.artifact, { kind: 'file' }>);
    case 'gem':
      return installGem(ctx, step.artifact as Extract<typeof step.artifact, { kind: 'gem' }>);
    case 'oci-image':
      return installImage(ctx, step.artifact as Extract<typeof step.artifact, { kind: 'oci-image' }>, dockerEngineAnswers);
  }
}
