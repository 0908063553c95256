/** A one-line progress bar with rate and ETA, drawn only on an interactive terminal. */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): (done: number, total: number) => void {
  if (!stream.isTTY) return () => {};
  const started = Date.now();
  let drawn = 0;
  return (done, total) => {
    const now = Date.now();
    if (done < total && now - drawn < 100) return;
    drawn = now;
    const fraction = total > 0 ? done / total : 1;
    const width = 30;
    const filled = Math.round(fraction * width);
    const seconds = (now - started) / 1000;
    const rate = done / Math.max(seconds, 1e-3);
    const eta = rate > 0 ? (total - done) / rate : 0;
    const bar = `${'='.repeat(filled)}${filled < width ? '>' : ''}${' '.repeat(Math.max(0, width - filled - 1))}`;
    stream.write(`\r${label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${done}/${total} ${rate.toFixed(0)}/s ETA ${clock(eta)}  `);
    if (done >= total) stream.write('\n');
  };
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
