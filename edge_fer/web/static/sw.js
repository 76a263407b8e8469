// Offline after the first load: every file of the exported folder is cached when this worker
// installs, and served from the cache first. Requests to any other origin are refused (the
// page needs none; this also keeps MediaPipe's usage metrics on the device).
const CACHE = 'edge-fer-__CACHE_VERSION__';
const FILES = __FILES__;

self.addEventListener('install', event => {
  event.waitUntil(caches.open(CACHE).then(cache => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', event => {
  event.waitUntil(caches.keys()
    .then(keys => Promise.all(keys.filter(k => k.startsWith('edge-fer-') && k !== CACHE).map(k => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', event => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin) {
    event.respondWith(Response.error());
    return;
  }
  if (event.request.method !== 'GET') return;
  event.respondWith(caches.open(CACHE).then(cache =>
    cache.match(event.request, {ignoreSearch: event.request.mode === 'navigate'})
      .then(hit => hit || fetch(event.request))));
});
