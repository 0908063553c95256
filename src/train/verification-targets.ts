/**
 * arcface_torch's CallBackVerification: the `valTargets` sets (<name>.bin next to the training
 * data; missing ones are skipped, as there) decoded once, evaluated with flip every `verbose`
 * steps, and the highest flip accuracy so far kept per set.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadVerificationSet, verifyBackbone, type BackboneVerification, type LoadedVerificationSet } from '../eval/index.js';
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

  evaluate(backbone: Backbone): TargetResult[] {
    return this.targets.map((t, i) => {
      const result = verifyBackbone(backbone, t);
      this.highest[i] = Math.max(this.highest[i], result.flip.accMean);
      return { name: t.name, ...result, highest: this.highest[i] };
    });
  }

  dispose(): void {
    for (const t of this.targets) t.images.dispose();
  }
}
