// The field worker's pages: position on the visit page (accuracy shown before checking in),
// check-in / outcome / check-out / deal forms and photos sent through the outbox (offline.js),
// and the shift's positions sent in batches to /today/pings.
import { send, start, render } from './offline.js';

const $ = (s, r = document) => r.querySelector(s);
let fix = null;

function metres(aLat, aLon, bLat, bLon) {
  const r = Math.PI / 180, x = Math.sin((bLat - aLat) * r / 2), y = Math.sin((bLon - aLon) * r / 2);
  return 12742000 * Math.asin(Math.sqrt(x * x + Math.cos(aLat * r) * Math.cos(bLat * r) * y * y));
}

function watch(onFix) {
  if (!navigator.geolocation) return;
  navigator.geolocation.watchPosition(p => {
    const c = p.coords;
    fix = { lat: c.latitude, lon: c.longitude, accuracy: c.accuracy, speed: c.speed, heading: c.heading, altitude: c.altitude, at: p.timestamp };
    onFix(fix);
  }, e => onFix(null, e), { enableHighAccuracy: true, maximumAge: 15000, timeout: 60000 });
}

// --- the visit page ---------------------------------------------------------------------
function showFix(f, err) {
  const v = $('#visit'), line = $('[data-fix]', v || undefined);
  if (!v || !line) return;
  if (!f) { line.textContent = err ? `Location: ${err.message || 'not available'}. Allow location to check in.` : 'Location: waiting for your phone…'; return; }
  const acc = Math.round(f.accuracy), d = v.dataset.siteLat ? Math.round(metres(f.lat, f.lon, +v.dataset.siteLat, +v.dataset.siteLon)) : null;
  const away = d !== null && d - acc > +v.dataset.radius, poor = acc > +v.dataset.poor;
  line.textContent = `Your location: ±${acc} m${d === null ? '' : ` · ${d} m from the site`}${poor ? ' · poor fix' : ''}`;
  line.classList.toggle('warn', away || poor);
  const o = $('[data-override]', v);
  if (o && (away || poor)) o.hidden = false;
}

function swap(html) {
  const doc = new DOMParser().parseFromString(html, 'text/html'), fresh = doc.getElementById('visit');
  if (!fresh) return false;
  $('#visit').replaceWith(fresh);
  showFix(fix);
  return true;
}

async function reload() {
  const v = $('#visit');
  if (!v) return;
  const r = await fetch(location.pathname, { headers: { 'HX-Request': 'true' } }).catch(() => null);
  if (r && r.ok) swap(await r.text());
}

function note(form, text) {
  let p = $('.queued', form.parentNode);
  if (!p) { p = document.createElement('p'); p.className = 'queued'; p.setAttribute('role', 'status'); form.before(p); }
  p.textContent = text;
}

async function submit(form) {
  const data = new URLSearchParams(new FormData(form));
  data.delete('_csrf_token');
  if (data.has('lat')) {
    if (!fix) { note(form, 'Waiting for your location… allow location access, then try again.'); return; }
    data.set('lat', fix.lat.toFixed(6)); data.set('lon', fix.lon.toFixed(6)); data.set('accuracy', Math.round(fix.accuracy));
  }
  const button = $('button[type=submit]', form);
  button.disabled = true;
  const at = new Date().toISOString();
  const res = await send({ url: form.action, body: data.toString(), type: 'application/x-www-form-urlencoded', label: form.dataset.queue },
    body => `${body}&recordedAt=${encodeURIComponent(at)}`);
  button.disabled = false;
  if (res) { swap(await res.text()) || note(form, `Not sent (${res.status}).`); return; }
  // Kept on the phone: show the next step at once.
  if (form.classList.contains('check-in')) {
    form.hidden = true;
    const out = $('form.check-out');
    out.hidden = false;
    note(out, 'Check-in saved on this phone: it is sent when you are back online.');
    $('#outcome').focus();
  } else {
    form.hidden = true;
    note(form, 'Saved on this phone: it is sent when you are back online.');
  }
}

async function upload(input) {
  const form = input.form, files = [...input.files];
  let i = 0;
  for (const file of files) {
    note(form, `Sending ${++i} of ${files.length}…`);
    const res = await send({ url: `${form.action}?filename=${encodeURIComponent(file.name || 'photo.jpg')}`, body: file, type: file.type || 'application/octet-stream', label: `Photo ${file.name}` });
    if (res && !swap(await res.text())) note(form, `Not sent (${res.status}).`);
  }
  input.value = '';
  if ($('.queued', form.parentNode)) note(form, `${files.length} file(s) handled; any waiting are listed above.`);
}

// --- positions while on shift ------------------------------------------------------------
function pings() {
  const status = $('[data-ping-status]');
  let batch = [], last = 0;
  const flush = async () => {
    if (!batch.length) return;
    const points = batch; batch = [];
    const res = await send({ url: '/today/pings', body: JSON.stringify({ points }), type: 'application/json', label: `Positions (${points.length})` });
    if (status) status.textContent = res ? `Position sent ${new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}.` : 'Positions kept on the phone.';
  };
  watch(f => {
    if (!f || f.at - last < 10000) return;
    last = f.at;
    const p = { timestamp: new Date(f.at).toISOString(), lat: f.lat, lon: f.lon, accuracy: f.accuracy };
    for (const k of ['speed', 'heading', 'altitude']) if (f[k] !== null && f[k] >= 0) p[k] = f[k];
    batch.push(p);
    if (batch.length >= 20) flush();
  });
  setInterval(flush, 60000);
  addEventListener('pagehide', flush);
}

// --- wiring ------------------------------------------------------------------------------
document.addEventListener('submit', e => {
  const form = e.target.closest('form[data-queue]');
  if (!form) return;
  e.preventDefault();
  submit(form);
});
document.addEventListener('change', e => { if (e.target.matches('[data-files] input[type=file]')) upload(e.target); });
document.addEventListener('outbox:sent', reload);
document.addEventListener('outbox:refused', e => { swap(e.detail.html); });

document.addEventListener('submit', e => {
  if (e.target.matches('form[action="/logout"]') && window.caches) caches.delete('fieldcrm-pages-v1');
});

// Keep today's visit pages for a day without network.
if ($('#day') && window.caches) {
  const links = [...new Set([...document.querySelectorAll('#day a[href^="/visits/"]')].map(a => a.getAttribute('href')))];
  caches.open('fieldcrm-pages-v1').then(c => Promise.all(links.map(l => fetch(l).then(r => r.ok && c.put(l, r))))).catch(() => {});
}
if ($('#visit')) watch(showFix);
if ($('[data-shift-open]')) pings();
start();
render();
if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
