// The Import button (SPEC §11): uploads ChatGPT, Claude.ai or Open WebUI exports (JSON
// or .zip) or an `events` backup to /api/sessions/import, with one progress bar for
// the upload (first half) and the server's reading and writing (second half).

const PHASE = { reading: [50, 25], writing: [75, 25] }; // [start %, share %] of the bar

function contentType(file) {
  const name = file.name.toLowerCase();
  if (name.endsWith('.zip')) return 'application/zip';
  if (name.endsWith('.jsonl') || name.endsWith('.ndjson')) return 'application/jsonl';
  return 'application/json';
}

/** A line for a person about what an import did. */
export function describeImport(r) {
  const parts = [`Imported ${r.imported.length} session${r.imported.length === 1 ? '' : 's'}`];
  if (r.replaced?.length) parts.push(`${r.replaced.length} replaced`);
  if (r.skipped?.length) parts.push(`${r.skipped.length} already here, skipped`);
  if (r.empty) parts.push(`${r.empty} empty left out`);
  return parts.join(' · ');
}

/**
 * POST one file; `onProgress(percent)`; resolves with the report, rejects with an
 * Error carrying `.code` (the server's) for a refused import.
 */
function upload(manager, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const query = new URLSearchParams({ progress: 'true', filename: file.name });
    xhr.open('POST', `${manager.baseUrl}/api/sessions/import?${query}`);
    xhr.setRequestHeader('Content-Type', contentType(file));
    if (manager.token) xhr.setRequestHeader('Authorization', `Bearer ${manager.token}`);
    let seen = 0;
    let result = null;
    const readLines = () => {
      const text = xhr.responseText;
      let end;
      while ((end = text.indexOf('\n', seen)) !== -1) {
        const line = text.slice(seen, end);
        seen = end + 1;
        let msg;
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (msg.phase in PHASE) {
          const [start, share] = PHASE[msg.phase];
          onProgress(start + (msg.total ? (share * msg.done) / msg.total : share));
        } else if ('success' in msg) result = msg;
      }
    };
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress((50 * e.loaded) / e.total);
    };
    xhr.onprogress = readLines;
    xhr.onerror = () => reject(Object.assign(new Error('cannot reach the server'), { code: 'network' }));
    xhr.onload = () => {
      if (xhr.status !== 200) {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          /* not JSON */
        }
        reject(Object.assign(new Error(body?.error || `import failed (${xhr.status})`),
          { code: body?.code || 'http_error', status: xhr.status }));
        return;
      }
      readLines();
      if (result?.success) resolve(result);
      else reject(Object.assign(new Error(result?.error || 'the import did not finish'),
        { code: result?.code || 'error', status: result?.status }));
    };
    xhr.send(file);
  });
}

/** Wire the Import button, its hidden file input, progress bar and status line. */
export function setupImport({ manager, onDone, onError }) {
  const button = document.getElementById('import-button');
  const input = document.getElementById('import-file');
  const bar = document.getElementById('import-progress');
  const status = document.getElementById('import-status');
  button.addEventListener('click', () => input.click());
  input.addEventListener('change', async () => {
    const files = [...input.files];
    input.value = '';
    if (!files.length) return;
    button.disabled = true;
    bar.hidden = false;
    const lines = [];
    try {
      for (const [i, file] of files.entries()) {
        status.textContent = `Importing ${file.name}${files.length > 1 ? ` (${i + 1}/${files.length})` : ''}…`;
        bar.value = 0;
        const report = await upload(manager, file, (pct) => { bar.value = pct; });
        bar.value = 100;
        lines.push(files.length > 1 ? `${file.name}: ${describeImport(report)}` : describeImport(report));
      }
    } catch (err) {
      onError(err, 'Could not import');
    } finally {
      status.textContent = lines.join('\n');
      bar.hidden = true;
      button.disabled = false;
      onDone();
    }
  });
}
