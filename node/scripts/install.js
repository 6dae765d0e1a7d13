'use strict';
// npm's install step for the honker package. A published package carries a
// prebuilt addon and this does nothing. Installed from a path in a source
// checkout (`npm install path/to/honker/node`), there is no addon yet: this
// builds it with cargo (the Rust toolchain from https://rustup.rs), with no
// dev dependencies needed, and also the SQLite extension `loadExtension`
// uses. Run inside node/ itself (the project's own `npm install`), it does
// nothing either: `make node-test` builds there.
//
// The JavaScript is compiled from the TypeScript sources in lib/ into
// dist/ (a published package carries dist/); from a source checkout without
// dist/ this compiles it with the pinned TypeScript, fetched by npx.
//
// HONKER_NODE_FORCE_BUILD=1 builds even when an addon is present;
// HONKER_BUILD_PROFILE picks the cargo profile (default: release).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const here = path.resolve(__dirname, '..');

/** The addon's file name, as `napi build --platform` names it. */
function addonName() {
  const abi = process.platform === 'linux'
    ? (process.report?.getReport()?.header?.glibcVersionRuntime ? '-gnu' : '-musl')
    : process.platform === 'win32' ? '-msvc' : '';
  return `honker.${process.platform}-${process.arch}${abi}.node`;
}

function hasAddon() {
  const prefix = `honker.${process.platform}-${process.arch}`;
  return fs.readdirSync(here).some((f) => f.startsWith(prefix) && f.endsWith('.node'));
}

/** Builds `manifest`'s cdylib with cargo; returns the library's path. */
function build(manifest, profile) {
  const out = execFileSync(
    'cargo',
    ['build', '--manifest-path', manifest, '--profile', profile, '--lib', '--message-format=json-render-diagnostics'],
    { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
  );
  let lib = null;
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue;
    const msg = JSON.parse(line);
    if (msg.reason === 'compiler-artifact' && msg.target?.kind?.includes('cdylib')) {
      lib = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) ?? lib;
    }
  }
  if (!lib) throw new Error(`cargo built no library for ${manifest}`);
  return lib;
}

/** Compiles lib/*.ts into dist/ when dist/ is missing. */
function compile() {
  if (fs.existsSync(path.join(here, 'dist', 'index.js'))) return;
  if (!fs.existsSync(path.join(here, 'lib', 'index.ts'))) {
    throw new Error('honker: the package has neither dist/ nor the TypeScript sources to compile it from');
  }
  const version = require(path.join(here, 'package.json')).devDependencies.typescript;
  console.error('honker: compiling the TypeScript sources (lib/ -> dist/)');
  execFileSync('npx', ['--yes', '-p', `typescript@${version}`, 'tsc', '-p', here], { cwd: here, stdio: 'inherit' });
}

function main() {
  const force = process.env.HONKER_NODE_FORCE_BUILD === '1';
  const ownInstall = process.env.INIT_CWD && path.resolve(process.env.INIT_CWD) === here;
  if (ownInstall) return;
  compile();
  if (!force && hasAddon()) return;
  const manifest = path.join(here, 'Cargo.toml');
  if (!fs.existsSync(manifest)) {
    throw new Error(`honker: no prebuilt addon for ${process.platform}-${process.arch}, and no Rust sources to build one from`);
  }
  try {
    execFileSync('cargo', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      'honker: installing from a source checkout builds the native addon, which needs the Rust toolchain: ' +
        'install it from https://rustup.rs (cargo on PATH), then install again',
    );
  }
  const profile = process.env.HONKER_BUILD_PROFILE || 'release';
  console.error(`honker: building the native addon (cargo, profile ${profile}); this takes a few minutes the first time`);
  fs.copyFileSync(build(manifest, profile), path.join(here, addonName()));
  const ext = path.join(here, '..', 'bindings', 'sqlite', 'Cargo.toml');
  if (fs.existsSync(ext)) {
    const lib = build(ext, profile);
    fs.copyFileSync(lib, path.join(here, path.basename(lib)));
  }
}

try {
  main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
}
