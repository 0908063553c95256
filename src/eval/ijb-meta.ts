/**
 * The meta files of insightface's IJB-B / IJB-C packs (`<root>/meta/`), read as eval_ijbc.py does,
 * one whitespace-separated record per line; a malformed line is an error naming file and line.
 *
 *   <target>_name_5pts_score.txt     image name, 5 landmarks (x y …), detector score
 *   <target>_face_tid_mid.txt        image name, template id, media id (same order)
 *   <target>_template_pair_label.txt template id, template id, 1 (same person) / 0
 */
import { readFileSync } from 'node:fs';

export class MetaError extends Error {
  override name = 'MetaError';
  constructor(readonly file: string, readonly line: number | undefined, reason: string) {
    super(line === undefined ? `${file}: ${reason}` : `${file}:${line}: ${reason}`);
  }
}

/** Calls `fn` with the fields of every non-blank line and its 1-based number. */
function eachLine(file: string, fn: (fields: string[], line: number) => void): void {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new MetaError(file, undefined, `cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  // line by line from the bytes: the pair list of IJB-C has 15.7 million lines
  for (let start = 0, line = 1; start < bytes.length; line++) {
    let end = bytes.indexOf(10, start);
    if (end < 0) end = bytes.length;
    const text = bytes.toString('latin1', start, end).trim();
    if (text !== '') fn(text.split(/\s+/), line);
    start = end + 1;
  }
}

function numbers(fields: string[], file: string, line: number, integer: boolean): number[] {
  return fields.map((f) => {
    const v = Number(f);
    if (f === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw new MetaError(file, line, `'${f}' is not ${integer ? 'an integer' : 'a number'}`);
    return v;
  });
}

export interface FaceList {
  names: string[];
  /** 10 per image: x, y of the 5 landmarks, as float32 (eval_ijbc.py parses them so) */
  landmarks: Float32Array;
  /** detector (faceness) score per image, float32 */
  scores: Float32Array;
}

export function readFaceList(file: string): FaceList {
  const names: string[] = [], landmarks: number[] = [], scores: number[] = [];
  eachLine(file, (fields, line) => {
    if (fields.length !== 12) throw new MetaError(file, line, `expected an image name, 10 landmark coordinates and a score, found ${fields.length} fields`);
    const values = numbers(fields.slice(1), file, line, false);
    names.push(fields[0]);
    landmarks.push(...values.slice(0, 10));
    scores.push(values[10]);
  });
  return { names, landmarks: Float32Array.from(landmarks), scores: Float32Array.from(scores) };
}

export interface TemplateMediaList {
  names: string[];
  templates: Int32Array;
  medias: Int32Array;
}

export function readTemplateMedia(file: string): TemplateMediaList {
  const names: string[] = [], templates: number[] = [], medias: number[] = [];
  eachLine(file, (fields, line) => {
    if (fields.length !== 3) throw new MetaError(file, line, `expected 'image template_id media_id', found ${fields.length} fields`);
    const [t, m] = numbers(fields.slice(1), file, line, true);
    names.push(fields[0]);
    templates.push(t);
    medias.push(m);
  });
  return { names, templates: Int32Array.from(templates), medias: Int32Array.from(medias) };
}

export interface TemplatePairs {
  t1: Int32Array;
  t2: Int32Array;
  labels: Uint8Array;
}

export function readTemplatePairs(file: string): TemplatePairs {
  const t1: number[] = [], t2: number[] = [], labels: number[] = [];
  eachLine(file, (fields, line) => {
    if (fields.length !== 3) throw new MetaError(file, line, `expected 'template_id template_id label', found ${fields.length} fields`);
    const [a, b, label] = numbers(fields, file, line, true);
    if (label !== 0 && label !== 1) throw new MetaError(file, line, `label ${label} is not 0 or 1`);
    t1.push(a);
    t2.push(b);
    labels.push(label);
  });
  return { t1: Int32Array.from(t1), t2: Int32Array.from(t2), labels: Uint8Array.from(labels) };
}
