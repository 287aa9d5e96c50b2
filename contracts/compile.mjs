#!/usr/bin/env node
// Compiles contracts/HAVEN.sol with the pinned `solc` npm package and writes
// the committed artifacts:
//   contracts/artifacts/HAVEN.json      abi, bytecode, deployedBytecode, compiler settings
//   contracts/artifacts/HAVEN.abi.json  the ABI alone
//
//   node contracts/compile.mjs           write the artifacts
//   node contracts/compile.mjs --check   compile in memory; exit 1 naming every
//                                        artifact that differs from the source
//
// The output is a pure function of the source, the OpenZeppelin sources in
// node_modules and the settings below (both packages pinned by
// package-lock.json), so a fresh compile reproduces the committed files byte
// for byte and CI can refuse stale artifacts.

import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'package.json'))

let solc
try {
  solc = require('solc')
} catch {
  console.error('solc is not installed: run `npm ci` at the repository root')
  process.exit(2)
}

const REQUIRED_SOLC = '0.8.30'
const CONTRACT = 'HAVEN'
// Source keys are repository-relative so the metadata hash embedded in the
// bytecode does not depend on where the checkout lives.
const SOURCE_KEY = `contracts/${CONTRACT}.sol`
const ARTIFACT_DIR = join(root, 'contracts', 'artifacts')

const SETTINGS = {
  // Pinned rather than left to the compiler default so a compiler bump cannot
  // silently retarget opcodes; anvil and every production chain run Prague.
  evmVersion: 'prague',
  // Many runs: the contract is deployed once and minted from millions of
  // times, so execution gas matters more than code size.
  optimizer: { enabled: true, runs: 10000 },
  // The IR pipeline saves ~400 gas per batched mint over the legacy one
  // (measured by the gas test in shared/chain/tests/contract).
  viaIR: true,
  outputSelection: {
    [SOURCE_KEY]: { [CONTRACT]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
  },
}

function compilerVersion() {
  // e.g. "0.8.30+commit.73712a01.Emscripten.clang"
  return solc.version()
}

function findImports(path) {
  // Only the pinned OpenZeppelin package may be imported; anything else is a
  // mistake that should fail the build rather than pick up a stray file.
  if (!path.startsWith('@openzeppelin/contracts/')) {
    return { error: `import outside @openzeppelin/contracts: ${path}` }
  }
  const file = join(root, 'node_modules', path)
  if (!existsSync(file)) {
    return { error: `${path} not found in node_modules: run \`npm ci\`` }
  }
  return { contents: readFileSync(file, 'utf8') }
}

function compile() {
  const version = compilerVersion()
  if (!version.startsWith(`${REQUIRED_SOLC}+`)) {
    console.error(`solc ${version} installed, ${REQUIRED_SOLC} required: run \`npm ci\``)
    process.exit(2)
  }
  const input = {
    language: 'Solidity',
    sources: { [SOURCE_KEY]: { content: readFileSync(join(root, SOURCE_KEY), 'utf8') } },
    settings: SETTINGS,
  }
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }))
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error')
  for (const e of output.errors ?? []) {
    console.error(e.formattedMessage ?? e.message)
  }
  if (errors.length > 0) {
    process.exit(1)
  }
  const contract = output.contracts[SOURCE_KEY][CONTRACT]
  const artifact = {
    contractName: CONTRACT,
    sourceName: SOURCE_KEY,
    compiler: { version, evmVersion: SETTINGS.evmVersion, viaIR: SETTINGS.viaIR, optimizer: SETTINGS.optimizer },
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
  }
  return {
    [join(ARTIFACT_DIR, `${CONTRACT}.json`)]: `${JSON.stringify(artifact, null, 2)}\n`,
    [join(ARTIFACT_DIR, `${CONTRACT}.abi.json`)]: `${JSON.stringify(contract.abi, null, 2)}\n`,
  }
}

const check = process.argv.includes('--check')
const files = compile()

if (check) {
  const stale = Object.entries(files)
    .filter(([file, content]) => !existsSync(file) || readFileSync(file, 'utf8') !== content)
    .map(([file]) => relative(root, file).split(sep).join('/'))
  if (stale.length > 0) {
    for (const file of stale) {
      console.error(`${file} differs from a fresh compile of ${SOURCE_KEY}`)
    }
    console.error('run `cargo xtask contracts` (or `node contracts/compile.mjs`) and commit the result')
    process.exit(1)
  }
  console.log(`contract artifacts are up to date (${compilerVersion()})`)
} else {
  mkdirSync(ARTIFACT_DIR, { recursive: true })
  for (const [file, content] of Object.entries(files)) {
    writeFileSync(file, content)
    console.log(`wrote ${relative(root, file).split(sep).join('/')}`)
  }
}
