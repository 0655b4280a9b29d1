// Writes app/disclosure/exports/schemas/cwe_names.json, the CWE names table of the exports
// (app/disclosure/exports/cwe.py), from MITRE's CWE list as BSI's csaf-validator-lib ships it
// (its newest catalogue, the one its CSAF test 6.1.11 checks names against), so the table is
// never written by hand. After a new pin in tests/csaf/package.json: `make cwe-names`.
// Usage: node tests/csaf/cwe_names.mjs LIB_DIR [OUT] (no OUT: to stdout).
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [lib, out] = process.argv.slice(2)
if (!lib) {
  console.error('usage: node tests/csaf/cwe_names.mjs LIB_DIR [OUT]')
  process.exit(2)
}
const { version } = JSON.parse(await readFile(join(lib, 'package.json'), 'utf8'))
const { cwecMap } = await import(pathToFileURL(join(lib, 'lib/cwec.js')).href)
const [cweVersion, load] = [...cwecMap.entries()][0] // the map lists the newest first
const catalogue = (await load()).default
const number = (id) => Number(id.slice('CWE-'.length))
const weaknesses = [...catalogue.weaknesses].sort((a, b) => number(a.id) - number(b.id))
const table = {
  source: `@secvisogram/csaf-validator-lib ${version}, lib/cwec/${cweVersion}.js`,
  cwe_version: cweVersion,
  cwe_date: catalogue.date,
  // CWE's Terms of Use: a copy carries MITRE's copyright designation and the terms.
  notice:
    `CWE(TM) content: Copyright (c) 2006-${catalogue.date.slice(0, 4)}, The MITRE Corporation. ` +
    'CWE and the CWE logo are trademarks of The MITRE Corporation. Used under the CWE Terms ' +
    'of Use: https://cwe.mitre.org/about/termsofuse.html',
  names: Object.fromEntries(weaknesses.map((w) => [w.id, w.name])),
}
const text = JSON.stringify(table, null, 0).replace(/,"CWE-/g, ',\n"CWE-') + '\n'
if (out) await writeFile(out, text)
else process.stdout.write(text)
