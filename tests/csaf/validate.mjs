// Validates CSAF 2.0 documents with BSI's csaf-validator-lib (tests/test_csaf_validator.py):
// the strict schema test, every mandatory test (6.1.x) and every recommended ("optional",
// 6.2.x) test. Usage: node tests/csaf/validate.mjs LIB_DIR FILE...; prints one JSON array, a
// result per file: {file, isValid, tests: [{name, isValid, errors, warnings, infos}]}, with
// only the tests that found something.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [lib, ...files] = process.argv.slice(2)
if (!lib || files.length === 0) {
  console.error('usage: node tests/csaf/validate.mjs LIB_DIR FILE...')
  process.exit(2)
}
const load = (name) => import(pathToFileURL(join(lib, name)).href)
const validateStrict = (await load('validateStrict.js')).default
const schema = await load('schemaTests.js')
const mandatory = await load('mandatoryTests.js')
const optional = await load('optionalTests.js')
const tests = [schema.csaf_2_0_strict, ...Object.values(mandatory), ...Object.values(optional)]

const results = []
for (const file of files) {
  const document = JSON.parse(await readFile(file, 'utf8'))
  const { isValid, tests: ran } = await validateStrict(tests, document)
  results.push({
    file,
    isValid,
    ran: ran.length,
    tests: ran.filter(
      (t) => !t.isValid || t.errors.length || t.warnings.length || t.infos.length
    ),
  })
}
console.log(JSON.stringify(results, null, 1))
