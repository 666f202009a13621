// Service worker: the shell (styles, scripts, icons) from the cache; pages from the network,
// falling back to the last copy seen (so /today and opened visits work offline).
const SHELL = 'fieldcrm-shell-v1', PAGES = 'fieldcrm-pages-v1';
const ASSETS = ['/static/css/app.css', '/static/css/field.css', '/static/js/field.js', '/static/js/offline.js',
  '/static/vendor/htmx.min.js', '/static/icons/icon-192.png', '/manifest.webmanifest'];

self.addEventListener('install', e => {
  e.waitUntil(caches.open(SHELL).then(c => c.addAll(ASSETS)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', e => {
  e.waitUntil(caches.keys().then(keys => Promise.all(keys.filter(k => k !== SHELL && k !== PAGES).map(k => caches.delete(k))))
    .then(() => self.clients.claim()).then(() => caches.open(PAGES)).then(c => c.add('/today').catch(() => {})));
});

self.addEventListener('fetch', e => {
  const req = e.request, url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  if (url.pathname.startsWith('/static/')) {
    // Stale while revalidate: instant from the cache, refreshed for the next time.
    e.respondWith(caches.open(SHELL).then(async c => {
      const hit = await c.match(req);
      const net = fetch(req).then(r => { if (r.ok) c.put(req, r.clone()); return r; }).catch(() => hit);
      return hit || net;
    }));
    return;
  }
  if (req.mode === 'navigate' || req.headers.get('HX-Request')) {
    const key = req.headers.get('HX-Request') ? null : url.pathname;
    e.respondWith(fetch(req).then(r => {
      if (key && r.ok && r.type === 'basic' && !r.redirected) caches.open(PAGES).then(c => c.put(key, r.clone()));
      return r;
    }).catch(async () => (key && await caches.match(key, { cacheName: PAGES })) || new Response(
      '<!doctype html><meta name=viewport content="width=device-width"><p style="font:16px system-ui;padding:1rem">Offline: this page was not opened before. <a href="/today">Today</a></p>',
      { status: 503, headers: { 'Content-Type': 'text/html' } })));
  }
});
