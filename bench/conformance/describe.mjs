// What bench_conformance.py needs to know of the vendored suite, as JSON on stdout: every test's id, kind, name,
// RFC 9111 anchors and dependencies, grouped by the suite's own areas, and the published results' cache versions.
import suites from './cache-tests/tests/index.mjs'
import published from './cache-tests/results/index.mjs'

const areas = suites.map(suite => ({
  id: suite.id,
  name: suite.name,
  spec_anchors: suite.spec_anchors || [],
  tests: suite.tests.map(test => ({
    id: test.id,
    kind: test.kind || 'required',
    name: test.name,
    spec_anchors: test.spec_anchors || suite.spec_anchors || [],
    depends_on: test.depends_on || [],
    browser_only: test.browser_only === true
  }))
}))
console.log(JSON.stringify({ areas, published }))
