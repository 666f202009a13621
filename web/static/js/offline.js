// The outbox: requests made without network are kept in IndexedDB (bodies, photos as Blobs)
// and replayed in order, each with its Idempotency-Key, so the server stores them once.
const STORE = 'outbox';
let dbp, busy = false;

function db() {
  return dbp ||= new Promise((ok, ko) => {
    const r = indexedDB.open('fieldcrm', 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true });
    r.onsuccess = () => ok(r.result);
    r.onerror = () => ko(r.error);
  });
}

async function tx(mode, fn) {
  const d = await db();
  return new Promise((ok, ko) => {
    const t = d.transaction(STORE, mode), req = fn(t.objectStore(STORE));
    t.oncomplete = () => ok(req.result);
    t.onerror = () => ko(t.error);
  });
}

// Only the signed-in worker's requests are shown and replayed (a shared phone keeps others').
const me = () => document.getElementById('outbox')?.dataset.me || '';
export const all = async () => (await tx('readonly', s => s.getAll())).filter(i => i.me === me());
const add = item => tx('readwrite', s => s.add(item));
const drop = id => tx('readwrite', s => s.delete(id));

export const newKey = () => crypto.randomUUID ? crypto.randomUUID()
  : Date.now().toString(36) + Math.random().toString(36).slice(2);

const csrf = () => JSON.parse(document.body.getAttribute('hx-headers') || '{}')['x-csrftoken'];

// Worth trying again later: no answer, a server fault, or the session/CSRF needs a new page.
const transient = r => !r || r.type === 'opaqueredirect' || r.status >= 500 || [401, 403, 408, 429].includes(r.status);

function post(item) {
  return fetch(item.url, {
    method: 'POST', body: item.body, redirect: 'manual', credentials: 'same-origin',
    headers: { 'Content-Type': item.type, 'Idempotency-Key': item.key, 'x-csrftoken': csrf(), 'HX-Request': 'true' },
  }).catch(() => null);
}

function emit(name, detail) { document.dispatchEvent(new CustomEvent(name, { detail })); }

// Send now; when that cannot work, keep it (with extra fields for the later body). Resolves to
// the Response, or null when the request waits in the outbox.
export async function send(item, later) {
  item.key ||= newKey();
  const pending = (await all()).length;
  const res = pending ? null : await post(item);  // keep the order behind what waits
  if (!transient(res)) return res;
  if (later) item.body = later(item.body);
  await add({ ...item, me: me(), at: new Date().toISOString() });
  if (pending) replay(); else render();
  return null;
}

// Replay what waits, oldest first; stop at the first that still cannot go.
export async function replay() {
  if (busy || !navigator.onLine) return render();
  busy = true;
  let sent = 0;
  try {
    for (const item of await all()) {
      const res = await post(item);
      if (transient(res)) break;
      await drop(item.id);
      sent++;
      if (!res.ok) emit('outbox:refused', { item, status: res.status, html: await res.text() });
    }
  } finally {
    busy = false;
  }
  await render();
  if (sent) emit('outbox:sent', { sent });
}

export async function render() {
  const box = document.getElementById('outbox');
  if (!box) return;
  const items = await all();
  box.hidden = !items.length;
  box.querySelector('[data-outbox-count]').textContent = items.length;
  const list = box.querySelector('[data-outbox-list]');
  list.replaceChildren(...items.map(i => {
    const li = document.createElement('li');
    li.textContent = `${new Date(i.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })} ${i.label}`;
    return li;
  }));
}

export function start() {
  addEventListener('online', replay);
  document.addEventListener('click', e => { if (e.target.closest('[data-outbox-send]')) replay(); });
  setInterval(replay, 30000);
  replay();
}
