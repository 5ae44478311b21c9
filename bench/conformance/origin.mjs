// The suite's origin server (cache-tests/test-engine/server/server.mjs), on the loopback interface only: the server
// calls listen(port), which binds every interface, so listen is given the host first. The port comes from
// npm_config_port, as when the server runs with `npm run server --port=N`.
import http from 'http'

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (port, ...rest) {
  return listen.call(this, port, '127.0.0.1', ...rest)
}

await import('./cache-tests/test-engine/server/server.mjs')
