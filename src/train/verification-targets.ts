/**
 * arcface_torch's CallBackVerification: the `valTargets` sets (<name>.bin next to the training
 * data; missing ones are skipped, as there) decoded once, evaluated with flip every `verbose`
 * steps, and the highest flip accuracy so far kept per set. In a multi-process run every rank
 * loads the sets and embeds its share of them (verifyBackbone's group): arcface_torch verifies on
 * rank 0 alone while the others wait in the next collective, which a long set (LFW on a CPU: minutes)
 * turns into a collective timeout.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadVerificationSet, verifyBackbone, type BackboneVerification, type LoadedVerificationSet, type VerificationGroup } from '../eval/index.js';
import type { Backbone } from '../models/index.js';

export interface TargetResult extends BackboneVerification {
  name: string;
  /** highest flip accuracy seen for this set */
  highest: number;
}

export class VerificationCallback {
  private readonly highest: number[];

  private constructor(readonly targets: LoadedVerificationSet[]) {
    this.highest = targets.map(() => 0);
  }

  /** Loads `<dataDir>/<name>.bin` for each name that exists. */
  static async load(names: string[], dataDir: string): Promise<VerificationCallback> {
    const targets: LoadedVerificationSet[] = [];
    for (const name of names) {
      const file = path.join(dataDir, `${name}.bin`);
      if (fs.existsSync(file)) targets.push(await loadVerificationSet(file));
    }
    return new VerificationCallback(targets);
  }

  /** Every rank of `group` calls this with the same sets; each gets the whole result. */
  evaluate(backbone: Backbone, group?: VerificationGroup): TargetResult[] {
    return this.targets.map((t, i) => {
      const result = verifyBackbone(backbone, t, group && group.worldSize > 1 ? { group } : {});
      this.highest[i] = Math.max(this.highest[i], result.flip.accMean);
      return { name: t.name, ...result, highest: this.highest[i] };
    });
  }

  dispose(): void {
    for (const t of this.targets) t.images.dispose();
  }
}
